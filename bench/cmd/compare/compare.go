package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"
)

// The systems as they appear in the tables.
const (
	sysNetron   = "netron"
	sysGRPC     = "grpc"
	sysNATS     = "nats"
	sysWS       = "ws"
	sysGoChan   = "gochannel"
	sysNetronWM = "netron-watermill" // our Bus through Watermill's interfaces
)

// concurrentCallers is the "16 concurrent callers over one connection".
const concurrentCallers = 16

// figureSystems says which systems take part in each figure.
var figureSystems = map[string][]string{
	"seq":    {sysNetron, sysGRPC, sysNATS, sysWS},
	"conc":   {sysNetron, sysGRPC, sysNATS, sysWS},
	"down":   {sysNetron, sysGRPC, sysWS},
	"up":     {sysNetron, sysGRPC, sysWS},
	"events": {sysNetron, sysGRPC, sysNATS, sysWS},
	"bus":    {sysNetron, sysNetronWM, sysGoChan},
}

// results holds every round of every measure.
type results struct {
	seq   map[string][]seqResult             // system → rounds
	rates map[string]map[string][]rateResult // figure → system → rounds
	errs  []error
	took  time.Duration
}

func (r *results) addRate(fig, sys string, v rateResult) {
	if r.rates[fig] == nil {
		r.rates[fig] = map[string][]rateResult{}
	}
	r.rates[fig][sys] = append(r.rates[fig][sys], v)
}

// systemOn says whether a system (of the table) is selected.
func (o *options) systemOn(sys string) bool {
	if sys == sysNetronWM {
		sys = sysNetron
	}
	return o.systems[sys]
}

func compare(ctx context.Context, o *options, out io.Writer) (*results, error) {
	start := time.Now()
	need := map[string]bool{}
	for fig := range o.figures {
		if fig == "bus" {
			continue // the bus figures start their own
		}
		for _, sys := range figureSystems[fig] {
			if o.systemOn(sys) {
				need[sys] = true
			}
		}
	}
	var (
		nb  *netronBench
		gb  *grpcBench
		nab *natsBench
		wb  *wsBench
		err error
	)
	if need[sysNetron] {
		if nb, err = startNetron(ctx); err != nil {
			return nil, fmt.Errorf("netron: %w", err)
		}
		defer nb.close()
	}
	if need[sysGRPC] {
		if gb, err = startGRPC(ctx); err != nil {
			return nil, fmt.Errorf("grpc: %w", err)
		}
		defer gb.close()
	}
	if need[sysNATS] {
		if nab, err = startNATS(ctx); err != nil {
			return nil, fmt.Errorf("nats: %w", err)
		}
		defer nab.close()
	}
	if need[sysWS] {
		if wb, err = startWS(ctx); err != nil {
			return nil, fmt.Errorf("websocket: %w", err)
		}
		defer wb.close()
	}

	adds := map[string]addFunc{}
	concAdds := map[string]addFunc{}
	downs := map[string]streamFunc{}
	ups := map[string]streamFunc{}
	events := map[string]func(context.Context, time.Duration) (rateResult, error){}
	if nb != nil {
		adds[sysNetron], concAdds[sysNetron] = nb.add, nb.add
		downs[sysNetron], ups[sysNetron] = nb.download, nb.upload
		events[sysNetron] = nb.events
	}
	if gb != nil {
		adds[sysGRPC], concAdds[sysGRPC] = gb.add, gb.add
		downs[sysGRPC], ups[sysGRPC] = gb.download, gb.upload
		events[sysGRPC] = gb.events
	}
	if nab != nil {
		adds[sysNATS], concAdds[sysNATS] = nab.add, nab.add
		events[sysNATS] = nab.events
	}
	if wb != nil {
		adds[sysWS], concAdds[sysWS] = wb.add, wb.mux.add
		downs[sysWS], ups[sysWS] = wb.download, wb.upload
		events[sysWS] = wb.events
	}
	buses := map[string]func(context.Context, time.Duration) (rateResult, error){
		sysNetron: busTyped, sysNetronWM: busWatermill, sysGoChan: goChannel,
	}

	res := &results{seq: map[string][]seqResult{}, rates: map[string]map[string][]rateResult{}}
	d := o.duration
	for round := 1; round <= o.count; round++ {
		for _, fig := range allFigures {
			if !o.figures[fig] {
				continue
			}
			for _, sys := range figureSystems[fig] {
				if !o.systemOn(sys) {
					continue
				}
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				label := fmt.Sprintf("[%d/%d] %-6s %-17s", round, o.count, fig, sys)
				var (
					line string
					err  error
				)
				switch fig {
				case "seq":
					var r seqResult
					if r, err = measureSequential(ctx, d, adds[sys]); err == nil {
						res.seq[sys] = append(res.seq[sys], r)
						line = fmt.Sprintf("%10.0f rt/s  p50 %v  p99 %v  %.1f allocs/rt", r.rate(), r.p50, r.p99, r.allocs)
					}
				case "conc":
					var r rateResult
					if r, err = measureConcurrent(ctx, d, concurrentCallers, concAdds[sys]); err == nil {
						res.addRate(fig, sys, r)
						line = fmt.Sprintf("%10.0f rt/s  %.1f allocs/rt", r.rate(), r.allocs)
					}
				case "down", "up":
					f := downs[sys]
					if fig == "up" {
						f = ups[sys]
					}
					var r rateResult
					if r, err = measureStream(ctx, d, f); err == nil {
						res.addRate(fig, sys, r)
						line = fmt.Sprintf("%10.1f MB/s  %.1f allocs/chunk", r.rate()/1e6, r.allocs)
					}
				case "events", "bus":
					f := events[sys]
					if fig == "bus" {
						f = buses[sys]
					}
					var r rateResult
					if r, err = f(ctx, d); err == nil {
						res.addRate(fig, sys, r)
						line = fmt.Sprintf("%10.0f msgs/s  %.1f allocs/msg %s", r.rate(), r.allocs, r.note)
					}
				}
				if err != nil {
					err = fmt.Errorf("%s %s: %w", fig, sys, err)
					res.errs = append(res.errs, err)
					line = "ERROR " + err.Error()
				}
				fmt.Fprintln(out, label, line)
			}
		}
	}
	res.took = time.Since(start)
	fmt.Fprintln(out)
	writeText(out, o, res)
	return res, nil
}

// median returns the median of the values f picks from rounds.
func median[T any](rounds []T, f func(T) float64) (float64, bool) {
	if len(rounds) == 0 {
		return 0, false
	}
	v := make([]float64, len(rounds))
	for i, r := range rounds {
		v[i] = f(r)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2], true
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2, true
}
