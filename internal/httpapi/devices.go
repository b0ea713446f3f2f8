package httpapi

import (
	"context"

	"github.com/iognet/iog/api"
	"github.com/iognet/iog/internal/iog"
)

// deviceList is an alias, not a type: its OpenAPI schema keeps the name the operation gives it.
type deviceList = struct {
	Devices []api.Device `json:"devices"`
}

type renameDeviceIn struct {
	ID   string `path:"id" maxLength:"64"`
	Body api.UpdateDeviceRequest
}

func (s *Server) createJoinToken(ctx context.Context, a iog.Account, _ *empty) (api.JoinToken, error) {
	return s.cfg.Fleet.CreateJoinToken(ctx, a)
}

func (s *Server) listDevices(ctx context.Context, a iog.Account, _ *empty) (deviceList, error) {
	ds, err := s.cfg.Fleet.List(ctx, a)
	return deviceList{ds}, err
}

func (s *Server) getDevice(ctx context.Context, a iog.Account, in *idPath) (api.Device, error) {
	return s.cfg.Fleet.Get(ctx, a, in.ID)
}

func (s *Server) renameDevice(ctx context.Context, a iog.Account, in *renameDeviceIn) (api.Device, error) {
	return s.cfg.Fleet.Rename(ctx, a, in.ID, in.Body.Name)
}

func (s *Server) pauseDevice(ctx context.Context, a iog.Account, in *idPath) (api.Device, error) {
	return s.cfg.Fleet.Pause(ctx, a, in.ID)
}

func (s *Server) resumeDevice(ctx context.Context, a iog.Account, in *idPath) (api.Device, error) {
	return s.cfg.Fleet.Resume(ctx, a, in.ID)
}

func (s *Server) deleteDevice(ctx context.Context, a iog.Account, in *idPath) (struct{}, error) {
	return struct{}{}, s.cfg.Fleet.Delete(ctx, a, in.ID)
}
