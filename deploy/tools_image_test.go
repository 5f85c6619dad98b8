//go:build image

package deploy_test

// requireTools: with the image tag (make test-image, CI) a missing tool fails.
const requireTools = true
