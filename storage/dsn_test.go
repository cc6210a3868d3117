package storage

import "testing"

func TestWithBinaryParameters(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://u@h:5432/db":                 "postgres://u@h:5432/db?binary_parameters=yes",
		"postgres://u@h/db?sslmode=disable":      "postgres://u@h/db?sslmode=disable&binary_parameters=yes",
		"postgresql://u@h/db":                    "postgresql://u@h/db?binary_parameters=yes",
		"host=h dbname=db":                       "host=h dbname=db binary_parameters=yes",
		"postgres://u@h/db?binary_parameters=no": "postgres://u@h/db?binary_parameters=no",
		"host=h binary_parameters=no":            "host=h binary_parameters=no",
	} {
		if got := withBinaryParameters(in); got != want {
			t.Errorf("withBinaryParameters(%q) = %q, want %q", in, got, want)
		}
	}
}
