package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/twofold-dev/twofold/server/internal/store"
)

// Break is where the chain first fails: the ID of the record that is wrong or missing,
// why, and the record found there (nil when it is missing).
type Break struct {
	ID     int64  `json:"id"`
	Reason string `json:"reason"`
	Record *Entry `json:"record,omitempty"`
}

// Report is the outcome of Verify as `twofold audit verify` prints it.
type Report struct {
	OK      bool   `json:"ok"`
	Records int64  `json:"records"`
	Broken  *Break `json:"broken,omitempty"`
}

var errStop = errors.New("stop")

// Verify walks the whole chain in ID order and reports the first record that was edited
// (its hash no longer matches its contents), deleted (a gap in the IDs) or moved (its
// prev_hash is not the hash of the record now before it). A chain cut off at its end
// looks whole to this walk.
func Verify(ctx context.Context, st store.AuditStore) (Report, error) {
	var rep Report
	var prevID int64
	var prevHash []byte
	err := st.AuditRecords(ctx, store.AuditFilter{}, func(r store.AuditRecord) error {
		e := EntryOf(r)
		switch {
		case r.ID != prevID+1:
			rep.Broken = &Break{ID: prevID + 1, Reason: missing(prevID, r.ID)}
		case !bytes.Equal(r.Hash, r.Digest()):
			rep.Broken = &Break{ID: r.ID, Reason: "its contents do not match its hash: the record was edited", Record: &e}
		case !bytes.Equal(r.PrevHash, prevHash):
			rep.Broken = &Break{ID: r.ID, Reason: fmt.Sprintf("its prev_hash is not the hash of record %d before it: records were reordered, replaced or rewritten", prevID), Record: &e}
		default:
			rep.Records++
			prevID, prevHash = r.ID, r.Hash
			return nil
		}
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return Report{}, fmt.Errorf("audit verify: %w", err)
	}
	rep.OK = rep.Broken == nil
	return rep, nil
}

func missing(prevID, nextID int64) string {
	if nextID == prevID+2 {
		return fmt.Sprintf("record %d is missing (deleted): record %d is followed by record %d", prevID+1, prevID, nextID)
	}
	return fmt.Sprintf("records %d to %d are missing (deleted): record %d is followed by record %d", prevID+1, nextID-1, prevID, nextID)
}
