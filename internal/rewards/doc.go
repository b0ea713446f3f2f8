// Package rewards decides what each hour's block mints and how it is split among the nominated
// devices. It is pure: no clock, no randomness, no I/O, integers only, so a supplier can
// recompute its reward from a block's published inputs. docs/REWARDS.md has the same rules with
// tables and a worked example.
//
// # Emission
//
// 300M IO (EmissionCap) of the 800M cap (TotalCap) is emitted one block an hour over 20 years
// (EmissionBlocks = 175,200 blocks); the other 500M (LaunchSupply) exists at launch. Block n is
// in month n / 730. Month 0 emits FirstEmission = floor(40,000,000 IO / 8760) = 4,566.210045 IO
// per block (8% a year of the launch supply); each later month emits its predecessor's per-block
// amount x 989849 / 1000000, floored (0.989849: the factor io.net's published figures imply;
// its text rounds the fall to 1.02% a month). From block 175,200 on nothing is emitted. The
// uncapped schedule sums to 1,061.068440 IO over the cap; Capped cuts the blocks that would
// carry the cumulative emission past EmissionCap, so 20 years emit exactly 300M IO.
//
// # Score
//
// Every factor is in per-mille (1000 = 1.0):
//
//	multiplier = the GPU class's multiplier (pricing.ClassOf(model).Multiplier; CPU-only 100)
//	gpus       = max(GPUs, 1)
//	tier       = low 800, standard 1000, high 1200, ultra 1500
//	hire       = 1000 + HireWeight x hiredSeconds / 3600, floored (HireWeight = 1000: 1000..2000)
//	reputation = 0..1000 (1000 until reputation exists)
//	score      = multiplier x gpus x tier x hire x reputation
//
// so score / 10^12 is the score in points.
//
// # Distribution
//
// Each nominated device gets floor(emission x score / sum of scores) micro-IO, computed in big
// integers; shares are ordered by device ID. What flooring leaves (less than one micro-IO per
// device) is dust: it is not minted.
package rewards
