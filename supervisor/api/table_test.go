package api

import (
	"testing"
	"time"
)

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                                     "0s",
		45*time.Second + 900*time.Millisecond: "45s",
		12*time.Minute + 5*time.Second:        "12m5s",
		3*time.Hour + 12*time.Minute + 59*time.Second: "3h12m",
		50 * time.Hour: "2d2h",
	} {
		if got := HumanDuration(d); got != want {
			t.Errorf("HumanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
