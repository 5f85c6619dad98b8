//go:build !image

package deploy_test

// requireTools: without the image tag a missing systemd-analyze skips its
// check (a developer's machine may lack it); `make test-image` and CI require it.
const requireTools = false
