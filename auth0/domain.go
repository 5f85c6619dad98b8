package auth0

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// ParseDomain turns an AUTH0_DOMAIN setting into the tenant's base URL
// (scheme://host[:port], no path). A bare host name means https; an http://
// URL is accepted only for a loopback host (the emulator), so that a typo can
// never send credentials over plain HTTP to the network.
func ParseDomain(s string) (*url.URL, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("is empty")
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("must be a host name or an https:// URL")
	}
	if u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("must be a host name or an https:// URL with no path, got %q", s)
	}
	host := u.Hostname()
	if strings.ContainsAny(host, " _/") || host == "" {
		return nil, fmt.Errorf("must be a host name, got %q", host)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !IsLoopback(host) {
			return nil, fmt.Errorf("http:// is allowed only for a loopback host (the emulator), got %q; use https", host)
		}
	default:
		return nil, fmt.Errorf("scheme must be https, got %q", u.Scheme)
	}
	return &url.URL{Scheme: u.Scheme, Host: u.Host}, nil
}

// IsLoopback says whether host (a name or an IP) is on the loopback interface.
func IsLoopback(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
