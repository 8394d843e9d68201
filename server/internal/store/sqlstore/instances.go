package sqlstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/twofold-dev/twofold/server/internal/store"
)

func (s *DB) PutInstance(ctx context.Context, in store.Instance) error {
	_, err := s.exec(ctx, `INSERT INTO instances (id, host, key_ids, follows, budgets, seen_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET host = excluded.host, key_ids = excluded.key_ids, follows = excluded.follows,
		budgets = excluded.budgets, seen_at = excluded.seen_at`,
		in.ID, in.Host, strings.Join(in.KeyIDs, ","), in.Follows, in.Budgets, ms(in.SeenAt))
	if err != nil {
		return fmt.Errorf("put instance: %w", err)
	}
	return nil
}

func (s *DB) DeleteInstance(ctx context.Context, id string) error {
	if _, err := s.exec(ctx, `DELETE FROM instances WHERE id = ?`, id); err != nil {
		return fmt.Errorf("delete instance: %w", err)
	}
	return nil
}

func (s *DB) Instances(ctx context.Context, since time.Time) ([]store.Instance, error) {
	rows, err := s.query(ctx, `SELECT id, host, key_ids, follows, budgets, seen_at FROM instances WHERE seen_at >= ? ORDER BY id`, ms(since))
	if err != nil {
		return nil, fmt.Errorf("instances: %w", err)
	}
	defer rows.Close()
	var out []store.Instance
	for rows.Next() {
		var in store.Instance
		var ids string
		var seen int64
		if err := rows.Scan(&in.ID, &in.Host, &ids, &in.Follows, &in.Budgets, &seen); err != nil {
			return nil, fmt.Errorf("instances: %w", err)
		}
		in.KeyIDs, in.SeenAt = strings.Split(ids, ","), fromMS(seen)
		out = append(out, in)
	}
	return out, rows.Err()
}
