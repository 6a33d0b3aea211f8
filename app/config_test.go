package main

import "testing"

func TestPostgresWithoutTLS(t *testing.T) {
	for raw, want := range map[string]bool{
		"postgres://u:p@db.internal:5432/starcite":                     true,
		"postgres://u:p@db.internal/starcite?sslmode=prefer":           true,
		"postgres://u:p@db.internal/starcite?sslmode=disable":          true,
		"postgres://u:p@db.internal/starcite?sslmode=require":          false,
		"postgres://u:p@db.internal/starcite?sslmode=verify-full":      false,
		"postgres://u:p@127.0.0.1:5432/starcite":                       false,
		"postgres://u:p@localhost/starcite?sslmode=disable":            false,
		"postgres://u:p@[::1]:5432/starcite":                           false,
		"postgres://u:p@127.0.0.1:5432,db2.internal:5432/starcite":     true,
		"postgresql://u:p@10.0.0.9/starcite?sslmode=verify-ca&x=y":     false,
		"postgresql:///starcite?host=/var/run/postgresql&sslmode=none": false,
	} {
		if _, got := postgresWithoutTLS(raw); got != want {
			t.Errorf("%s: warn %v, want %v", raw, got, want)
		}
	}
}
