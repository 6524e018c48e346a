//go:build race

package committee

const raceEnabled = true
