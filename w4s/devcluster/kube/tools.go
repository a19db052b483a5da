//go:build tools

// Package kube only pins the Kubernetes commands this module builds; nothing imports it.
package kube
