package clockcheck

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// NTPResult is one SNTP check.
type NTPResult struct {
	Server string
	At     time.Time
	// Offset is the local clock minus the server's (positive: this clock is ahead).
	Offset time.Duration
	RTT    time.Duration
	Err    error
}

// ntpEpoch is 1900-01-01, where NTP time starts.
var ntpEpoch = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)

func toNTP(t time.Time) uint64 {
	d := t.Sub(ntpEpoch)
	secs := uint64(d / time.Second)
	frac := uint64(d%time.Second) << 32 / uint64(time.Second)
	return secs<<32 | frac
}

func fromNTP(v uint64) time.Time {
	secs, frac := v>>32, v&0xffffffff
	return ntpEpoch.Add(time.Duration(secs)*time.Second + time.Duration(frac*uint64(time.Second)>>32))
}

// QueryNTP asks server (host or host:port, port 123 by default) for the time once, SNTP
// (RFC 4330), with now as the local clock.
func QueryNTP(ctx context.Context, server string, now func() time.Time) NTPResult {
	r := NTPResult{Server: server}
	r.Offset, r.RTT, r.Err = query(ctx, server, now)
	r.At = now()
	return r
}

func query(ctx context.Context, server string, now func() time.Time) (offset, rtt time.Duration, err error) {
	if _, _, err := net.SplitHostPort(server); err != nil {
		server = net.JoinHostPort(server, "123")
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", server)
	if err != nil {
		return 0, 0, fmt.Errorf("ntp %s: %w", server, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	req := make([]byte, 48)
	req[0] = 0<<6 | 4<<3 | 3 // no leap warning, version 4, client
	t1 := now()
	binary.BigEndian.PutUint64(req[40:], toNTP(t1)) // transmit timestamp, echoed as origin
	if _, err := conn.Write(req); err != nil {
		return 0, 0, fmt.Errorf("ntp %s: %w", server, err)
	}
	res := make([]byte, 48)
	for {
		n, err := conn.Read(res)
		if err != nil {
			return 0, 0, fmt.Errorf("ntp %s: %w", server, err)
		}
		t4 := now()
		// An answer to another request (or a forgery) does not echo our timestamp.
		if n < 48 || binary.BigEndian.Uint64(res[24:]) != binary.BigEndian.Uint64(req[40:]) {
			continue
		}
		if mode := res[0] & 7; mode != 4 {
			return 0, 0, fmt.Errorf("ntp %s: answer in mode %d, not a server's", server, mode)
		}
		if res[0]>>6 == 3 || res[1] == 0 {
			return 0, 0, errors.New("ntp " + server + ": the server is not synchronised (kiss-o'-death or stratum 0)")
		}
		t2 := fromNTP(binary.BigEndian.Uint64(res[32:]))
		t3 := fromNTP(binary.BigEndian.Uint64(res[40:]))
		// Offset of the server's clock from ours, RFC 4330; ours minus the server's is its
		// negation.
		theirs := (t2.Sub(t1) + t3.Sub(t4)) / 2
		return -theirs, t4.Sub(t1) - t3.Sub(t2), nil
	}
}

// RunNTP checks server every interval until ctx ends, recording each result in e.
func (e *Estimator) RunNTP(ctx context.Context, server string, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		r := QueryNTP(ctx, server, e.cfg.Now)
		if r.Err != nil && ctx.Err() == nil {
			log.Warn("NTP check failed", "server", server, "err", r.Err)
		}
		e.SetNTP(r)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
