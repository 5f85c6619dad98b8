package main

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// rtProxy sits between syncd and PostgreSQL and counts what crosses it: a
// "send" is one burst of bytes from the client (a query, a pipelined batch,
// a Sync), which is what a round trip costs on the wire; protocol messages
// written together arrive together. It counts every connection syncd opens,
// the LISTEN one included.
type rtProxy struct {
	ln     net.Listener
	target string

	sends, recvs, conns atomic.Int64

	mu    sync.Mutex
	open  map[net.Conn]struct{}
	wg    sync.WaitGroup
	close sync.Once
}

func startProxy(target string) (*rtProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &rtProxy{ln: ln, target: target, open: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	return p, nil
}

func (p *rtProxy) addr() string { return p.ln.Addr().String() }

func (p *rtProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.conns.Add(1)
		p.track(c, s)
		p.wg.Go(func() { p.pipe(s, c, &p.sends) })
		p.wg.Go(func() { p.pipe(c, s, &p.recvs) })
	}
}

func (p *rtProxy) track(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		p.open[c] = struct{}{}
	}
}

// pipe copies from src to dst, counting reads.
func (p *rtProxy) pipe(dst, src net.Conn, n *atomic.Int64) {
	buf := make([]byte, 64<<10)
	defer func() {
		dst.Close()
		src.Close()
	}()
	for {
		k, err := src.Read(buf)
		if k > 0 {
			n.Add(1)
			if _, werr := dst.Write(buf[:k]); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return
			}
			return
		}
	}
}

func (p *rtProxy) reset() {
	p.sends.Store(0)
	p.recvs.Store(0)
}

func (p *rtProxy) Close() {
	p.close.Do(func() {
		p.ln.Close()
		p.mu.Lock()
		for c := range p.open {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
}
