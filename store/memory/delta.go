package memory

import (
	"encoding/binary"
	"errors"
	"math"
)

// A record's Data is kept either as it is or, when it is mostly made of
// runs of bytes that another Data of its family holds (the access and
// refresh tokens of a rotation repeat those of the one before, but for a
// few times), as a delta against that Data: a list of operations that
// rebuild it, each either a run of literal bytes or a copy of a run of the
// base. The encoding:
//
//	uvarint(len(data)) op*
//	op = uvarint(n<<1) n bytes          (a literal run)
//	   | uvarint(n<<1|1) uvarint(off)   (base[off:off+n])
//
// It is opaque bytes in, the same bytes out: the Store does not know what
// the provider writes, only that records of one request resemble each
// other.

// deltaHashBits sizes the table of base positions encodeDelta looks runs up
// in; it lives on the stack.
const deltaHashBits = 11

// deltaMinRun is the shortest run encodeDelta copies from the base: a copy
// costs up to 6 bytes of operation, a shorter run is cheaper as literal
// bytes.
const deltaMinRun = 8

// deltaHash hashes the 4 bytes at s[i:].
func deltaHash(s string, i int) uint32 {
	v := uint32(s[i]) | uint32(s[i+1])<<8 | uint32(s[i+2])<<16 | uint32(s[i+3])<<24
	return (v * 2654435761) >> (32 - deltaHashBits)
}

// encodeDelta appends to dst the delta that rebuilds data from base, and
// returns it and true; or, once the delta would be longer than limit bytes,
// dst as far as it got and false (so that the caller may reuse it).
func encodeDelta(dst []byte, base string, data []byte, limit int) ([]byte, bool) {
	// The first position in base of each hash, +1 (0: none), so that a run
	// of Data equal to base from its start is copied in one operation.
	// Runs are looked up from the base's first 64 KB (they may extend
	// beyond): uint16 positions keep the table, cleared on every call,
	// small.
	var table [1 << deltaHashBits]uint16
	for i := 0; i+4 <= len(base) && i < math.MaxUint16; i++ {
		if h := deltaHash(base, i); table[h] == 0 {
			table[h] = uint16(i + 1)
		}
	}
	limit += len(dst)
	dst = binary.AppendUvarint(dst, uint64(len(data)))
	lit := 0 // where the pending literal run starts
	for j := 0; j+4 <= len(data); {
		c := int(table[deltaHash(string(data[j:j+4]), 0)]) - 1
		if c < 0 {
			j++
			continue
		}
		n := 0
		for c+n < len(base) && j+n < len(data) && base[c+n] == data[j+n] {
			n++
		}
		back := 0 // the run may begin before j, in the pending literal bytes
		for back < j-lit && back < c && base[c-back-1] == data[j-back-1] {
			back++
		}
		if n+back < deltaMinRun {
			j++
			continue
		}
		if len(dst)+(j-back-lit)+2*binary.MaxVarintLen64 > limit {
			return dst, false
		}
		dst = appendLiteral(dst, data[lit:j-back])
		dst = binary.AppendUvarint(dst, uint64(n+back)<<1|1)
		dst = binary.AppendUvarint(dst, uint64(c-back))
		j += n
		lit = j
	}
	if len(dst)+(len(data)-lit)+binary.MaxVarintLen64 > limit {
		return dst, false
	}
	return appendLiteral(dst, data[lit:]), true
}

// appendLiteral appends the operation of a literal run, if lit is not
// empty.
func appendLiteral(dst, lit []byte) []byte {
	if len(lit) == 0 {
		return dst
	}
	dst = binary.AppendUvarint(dst, uint64(len(lit))<<1)
	return append(dst, lit...)
}

// errBadDelta is what decodeDelta returns for a delta that does not fit its
// base: a bug in the Store, never the caller's doing.
var errBadDelta = errors.New("memory: corrupt delta")

// decodeDelta returns the Data that delta rebuilds from base, in a new
// slice.
func decodeDelta(base, delta string) ([]byte, error) {
	size, n := uvarint(delta)
	if n <= 0 || size > uint64(len(base)+len(delta))*64 {
		return nil, errBadDelta
	}
	out := make([]byte, 0, size)
	for i := n; i < len(delta); {
		op, n := uvarint(delta[i:])
		if n <= 0 {
			return nil, errBadDelta
		}
		i += n
		run := op >> 1
		if op&1 == 0 {
			if run > uint64(len(delta)-i) {
				return nil, errBadDelta
			}
			out = append(out, delta[i:i+int(run)]...)
			i += int(run)
			continue
		}
		off, n := uvarint(delta[i:])
		if n <= 0 || off > uint64(len(base)) || run > uint64(len(base))-off {
			return nil, errBadDelta
		}
		i += n
		out = append(out, base[off:off+run]...)
	}
	if uint64(len(out)) != size {
		return nil, errBadDelta
	}
	return out, nil
}

// uvarint is binary.Uvarint of a string.
func uvarint(s string) (uint64, int) {
	var x uint64
	for i := 0; i < len(s) && i < binary.MaxVarintLen64; i++ {
		b := s[i]
		if b < 0x80 {
			return x | uint64(b)<<(7*i), i + 1
		}
		x |= uint64(b&0x7f) << (7 * i)
	}
	return 0, 0
}
