package httpapi

import (
	"context"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
)

func (s *Server) me(_ context.Context, a iog.Account, _ *empty) (api.Account, error) {
	return toAccount(a), nil
}

func (s *Server) createAccount(ctx context.Context, a iog.Account, in *body[api.CreateAccountRequest]) (api.CreateAccountResponse, error) {
	if !hasAdmin(a) {
		return api.CreateAccountResponse{}, iog.Errorf(iog.EFORBIDDEN, "only admins can create accounts")
	}
	roles := make([]iog.Role, len(in.Body.Roles))
	for i, r := range in.Body.Roles {
		roles[i] = iog.Role(r)
	}
	acct, key, err := s.cfg.Auth.CreateAccount(ctx, in.Body.Name, roles)
	return api.CreateAccountResponse{Account: toAccount(acct), APIKey: key}, err
}

func (s *Server) gpuModels(ctx context.Context, _ iog.Account, _ *empty) (api.GPUModels, error) {
	ms, err := s.cfg.Market.Models(ctx)
	return api.GPUModels{Models: ms}, err
}

func hasAdmin(a iog.Account) bool {
	for _, r := range a.Roles {
		if r == iog.RoleAdmin {
			return true
		}
	}
	return false
}

func toAccount(a iog.Account) api.Account {
	out := api.Account{ID: a.ID, Name: a.Name, CreatedAt: a.CreatedAt, Roles: []string{}}
	for _, r := range a.Roles {
		out.Roles = append(out.Roles, string(r))
	}
	return out
}
