package fsm

import (
	"encoding/binary"
	"errors"
)

// errTruncated means an encoded command, result or snapshot ended early or
// carried an impossible length.
var errTruncated = errors.New("fsm: truncated or malformed encoding")

// encoder appends the compact binary forms used by commands, results and
// snapshots: unsigned varints and length-prefixed byte strings.
type encoder struct{ b []byte }

func (e *encoder) byte(v byte)      { e.b = append(e.b, v) }
func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }

func (e *encoder) bytes(v []byte) {
	e.uvarint(uint64(len(v)))
	e.b = append(e.b, v...)
}

func (e *encoder) string(v string) {
	e.uvarint(uint64(len(v)))
	e.b = append(e.b, v...)
}

func (e *encoder) optString(v *string) {
	if v == nil {
		e.byte(0)
		return
	}
	e.byte(1)
	e.string(*v)
}

func (e *encoder) optUvarint(v *uint64) {
	if v == nil {
		e.byte(0)
		return
	}
	e.byte(1)
	e.uvarint(*v)
}

func (e *encoder) hash(h [32]byte) { e.b = append(e.b, h[:]...) }

func (e *encoder) bool(v bool) {
	if v {
		e.byte(1)
	} else {
		e.byte(0)
	}
}

// decoder reads what encoder wrote. The first problem sticks in err and
// every later read returns a zero value, so callers check err once.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() { d.err = errTruncated; d.b = nil }

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

// length reads a length prefix and checks it against what is left.
func (d *decoder) length() int {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return 0
	}
	return int(n)
}

// bytes returns a copy: Dragonboat's entry buffers must not be retained.
func (d *decoder) bytes() []byte {
	n := d.length()
	if d.err != nil {
		return nil
	}
	v := make([]byte, n)
	copy(v, d.b[:n])
	d.b = d.b[n:]
	return v
}

// view returns the next byte string without copying; valid only while the
// decoded buffer is.
func (d *decoder) view() []byte {
	n := d.length()
	if d.err != nil {
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.length()
	if d.err != nil {
		return ""
	}
	v := string(d.b[:n])
	d.b = d.b[n:]
	return v
}

func (d *decoder) optString() *string {
	switch d.byte() {
	case 0:
		return nil
	case 1:
		s := d.string()
		return &s
	default:
		d.fail()
		return nil
	}
}

func (d *decoder) optUvarint() *uint64 {
	switch d.byte() {
	case 0:
		return nil
	case 1:
		v := d.uvarint()
		return &v
	default:
		d.fail()
		return nil
	}
}

func (d *decoder) bool() bool {
	switch d.byte() {
	case 0:
		return false
	case 1:
		return true
	default:
		d.fail()
		return false
	}
}

func (d *decoder) hash() (h [32]byte) {
	if len(d.b) < len(h) {
		d.fail()
		return h
	}
	copy(h[:], d.b)
	d.b = d.b[len(h):]
	return h
}

// count reads a collection length, bounded by the bytes left so a corrupt
// prefix cannot make the caller allocate gigabytes.
func (d *decoder) count(minItemSize int) int {
	n := d.uvarint()
	if n > uint64(len(d.b)/minItemSize) {
		d.fail()
		return 0
	}
	return int(n)
}
