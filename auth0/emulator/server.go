package emulator

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

// Server is an Emulator listening on a TCP address.
type Server struct {
	// URL is the base URL clients use: http://127.0.0.1:PORT (https:// for
	// ListenTLS). Its host:port is also the Auth0 domain of the token
	// audience unless Options.Domain says otherwise.
	URL string
	// Emulator is the tenant it serves, for counters, faults and state.
	Emulator *Emulator
	// CertPEM is the self-signed certificate of a TLS server (nil otherwise).
	CertPEM []byte

	srv  *http.Server
	ln   net.Listener
	done chan error

	closeOnce sync.Once
	closeErr  error
}

// Listen serves a new emulator with opts on addr ("127.0.0.1:0" picks a free
// port) until Close.
func Listen(addr string, opts Options) (*Server, error) {
	return listen(addr, opts, nil)
}

// ListenTLS is Listen over HTTPS with a self-signed certificate made at start
// for 127.0.0.1, ::1, localhost (and Options.Domain's host); its PEM is
// written to certOut unless certOut is "". The official Auth0 SDKs insist on
// https://, and can be pointed at it with that certificate trusted.
func ListenTLS(addr string, opts Options, certOut string) (*Server, error) {
	cert, certPEM, err := selfSigned(opts.Domain)
	if err != nil {
		return nil, fmt.Errorf("make certificate: %w", err)
	}
	if certOut != "" {
		if err := os.WriteFile(certOut, certPEM, 0o644); err != nil {
			return nil, fmt.Errorf("write certificate: %w", err)
		}
	}
	s, err := listen(addr, opts, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		return nil, err
	}
	s.CertPEM = certPEM
	return s, nil
}

func listen(addr string, opts Options, tlsConfig *tls.Config) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	e := New(opts)
	tcp := ln.Addr().(*net.TCPAddr)
	host := tcp.IP.String()
	if tcp.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
		ln = tls.NewListener(ln, tlsConfig)
	}
	s := &Server{
		URL:      scheme + "://" + net.JoinHostPort(host, strconv.Itoa(tcp.Port)),
		Emulator: e,
		// Every phase of a request is bounded, so that a client that stalls
		// cannot hold a connection for ever; WriteTimeout leaves room for
		// injected latency and a large export file.
		srv: &http.Server{
			Handler:           e,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      2 * time.Minute,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(e.log.Handler(), slog.LevelDebug),
		},
		ln:   ln,
		done: make(chan error, 1),
	}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// Client returns an http.Client that trusts the server's certificate (a
// plain client for an HTTP server).
func (s *Server) Client() *http.Client {
	if s.CertPEM == nil {
		return &http.Client{}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CertPEM)
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
}

// Close stops the server at once, closing open connections, and waits for
// it to stop accepting.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.closeErr = s.srv.Close()
		if serr := <-s.done; serr != nil && !errors.Is(serr, http.ErrServerClosed) && s.closeErr == nil {
			s.closeErr = serr
		}
	})
	return s.closeErr
}

func selfSigned(domain string) (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "syncd Auth0 emulator"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(30 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if domain != "" {
		h := domain
		if hh, _, err := net.SplitHostPort(domain); err == nil {
			h = hh
		}
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, certPEM, nil
}
