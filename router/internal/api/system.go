package api

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// SystemStatus is the machine's memory, which on a 1 GiB Pi is what runs
// out first.
type SystemStatus struct {
	MemTotalBytes     int64 `json:"mem_total_bytes"`
	MemAvailableBytes int64 `json:"mem_available_bytes"`
}

// readSystem reads /proc/meminfo; fields it cannot read stay zero.
func readSystem() SystemStatus {
	var s SystemStatus
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return s
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			continue
		}
		switch key {
		case "MemTotal":
			s.MemTotalBytes = kb << 10
		case "MemAvailable":
			s.MemAvailableBytes = kb << 10
		}
	}
	return s
}
