package testcontainers

import "syscall"

// serverProcAttr: Pdeathsig makes the server die with the process that
// started it, even when a test panics and no deferred cleanup runs.
func serverProcAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
