package testcontainers

import (
	"bufio"
	"bytes"
	"encoding/json"
)

// RunningMsg is the message of the log line `syncd run` writes once it
// serves; its metrics_addr attribute is the address it bound.
const RunningMsg = "syncd running"

// ListeningAddr returns the metrics_addr of the (skip+1)-th "syncd running"
// line of a JSON log (LOG_FORMAT=json), "" if there is none yet. Harnesses
// start syncd with METRICS_ADDR=127.0.0.1:0 and read the port the kernel
// gave it here: a port picked free beforehand may be taken by another
// process before syncd binds it, and the harness would then talk to that
// process instead.
func ListeningAddr(log []byte, skip int) string {
	sc := bufio.NewScanner(bytes.NewReader(log))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.Contains(line, []byte(RunningMsg)) {
			continue
		}
		var rec struct {
			Msg  string `json:"msg"`
			Addr string `json:"metrics_addr"`
		}
		if json.Unmarshal(line, &rec) != nil || rec.Msg != RunningMsg {
			continue
		}
		if skip > 0 {
			skip--
			continue
		}
		return rec.Addr
	}
	return ""
}
