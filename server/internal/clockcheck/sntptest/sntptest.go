// Package sntptest is an SNTP server on loopback UDP whose clock is off by a chosen amount,
// for tests of the verifier's NTP check. No test reaches a real time server.
package sntptest

import (
	"encoding/binary"
	"net"
	"testing"
	"time"
)

var epoch = time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC)

// timestamp is t in NTP's 32.32 fixed-point seconds since 1900.
func timestamp(t time.Time) uint64 {
	d := t.Sub(epoch)
	return uint64(d/time.Second)<<32 | uint64(d%time.Second)<<32/uint64(time.Second)
}

// Server answers SNTP requests with a clock skew ahead of the real one, claiming stratum
// (0 means unsynchronised), until the test ends. It returns its address.
func Server(t testing.TB, skew time.Duration, stratum byte) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 48 {
				continue
			}
			received := time.Now().Add(skew)
			res := make([]byte, 48)
			res[0] = 0<<6 | 4<<3 | 4 // no leap warning, version 4, server
			res[1] = stratum
			copy(res[24:32], buf[40:48]) // origin: the client's transmit timestamp
			binary.BigEndian.PutUint64(res[32:], timestamp(received))
			binary.BigEndian.PutUint64(res[40:], timestamp(time.Now().Add(skew)))
			pc.WriteTo(res, addr)
		}
	}()
	return pc.LocalAddr().String()
}
