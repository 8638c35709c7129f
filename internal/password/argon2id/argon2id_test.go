package argon2id

import (
	"bytes"
	"encoding/hex"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"golang.org/x/crypto/argon2"
)

// The Argon2id vectors of x/crypto's tests (password "password", salt "somesalt", 24-byte
// keys), from the reference implementation.
var vectors = []struct {
	time, memory uint32
	threads      uint8
	hash         string
}{
	{1, 64, 1, "655ad15eac652dc59f7170a7332bf49b8469be1fdb9c28bb"},
	{2, 64, 1, "068d62b26455936aa6ebe60060b0a65870dbfa3ddf8d41f7"},
	{2, 64, 2, "350ac37222f436ccb5c0972f1ebd3bf6b958bf2071841362"},
	{3, 256, 2, "4668d30ac4187e6878eedeacf0fd83c5a0a30db2cc16ef0b"},
	{4, 4096, 4, "145db9733a9f4ee43edf33c509be96b934d505a4efb33c5a"},
	{4, 1024, 8, "8dafa8e004f8ea96bf7c0f93eecf67a6047476143d15577f"},
	{2, 64, 3, "4a15b31aec7c2590b87d1f520be7d96f56658172deaa3079"},
	{3, 1024, 6, "1640b932f4b60e272f5d2207b9a9c626ffa1bd88d2349016"},
}

func TestVectors(t *testing.T) {
	for _, v := range vectors {
		want, _ := hex.DecodeString(v.hash)
		// Twice: the second hash of the same size runs on the first one's matrix.
		for range 2 {
			if got := Key([]byte("password"), []byte("somesalt"), v.time, v.memory, v.threads, uint32(len(want))); !bytes.Equal(got, want) {
				t.Errorf("t=%d m=%d p=%d: %x, want %x", v.time, v.memory, v.threads, got, want)
			}
		}
	}
}

// garbage returns a matrix of n blocks filled with random words.
func garbage(r *rand.Rand, n uint32) []block {
	m := make([]block, n)
	for i := range m {
		for j := range m[i] {
			m[i][j] = r.Uint64()
		}
	}
	return m
}

// TestReusedMemory: a hash on a matrix that holds anything, here random words and then the
// blocks of another hash, is x/crypto's. With x/crypto's XOR in the first pass it fails.
func TestReusedMemory(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cases := []struct {
		time, memory uint32
		threads      uint8
		keyLen       uint32
	}{
		{1, 8, 1, 32}, {1, 64, 1, 32}, {1, 1000, 1, 32}, {2, 64, 1, 16}, {3, 256, 2, 64},
		{1, 1024, 4, 32}, {4, 130, 3, 100}, {1, 4096, 1, 32},
	}
	for _, c := range cases {
		m := garbage(r, blocks(c.memory, c.threads)+3)
		for i := range 3 {
			pw, salt := []byte{byte(i), 'p'}, []byte("saltsaltsalt"+string(rune('a'+i)))
			want := argon2.IDKey(pw, salt, c.time, c.memory, c.threads, c.keyLen)
			if got := derive(m, pw, salt, c.time, c.memory, c.threads, c.keyLen); !bytes.Equal(got, want) {
				t.Fatalf("t=%d m=%d p=%d, hash %d on a used matrix: %x, want %x", c.time, c.memory, c.threads, i, got, want)
			}
		}
	}
}

// TestOtherSizes: hashes of other parameters in a row, sharing the pool, are x/crypto's:
// a matrix larger than needed is reused, a smaller one replaced.
func TestOtherSizes(t *testing.T) {
	for _, memory := range []uint32{2048, 64, 4096, 100, 4096, 1} {
		want := argon2.IDKey([]byte("pw"), []byte("somesalt"), 1, memory, 1, 32)
		if got := Key([]byte("pw"), []byte("somesalt"), 1, memory, 1, 32); !bytes.Equal(got, want) {
			t.Errorf("m=%d: %x, want %x", memory, got, want)
		}
	}
}

// TestConcurrent: hashes on many goroutines at once, sharing the pool, are x/crypto's.
func TestConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 4 {
				pw := []byte{byte(g), byte(i)}
				want := argon2.IDKey(pw, []byte("somesalt"), 1, 512, 1, 32)
				if got := Key(pw, []byte("somesalt"), 1, 512, 1, 32); !bytes.Equal(got, want) {
					t.Errorf("goroutine %d, hash %d: %x, want %x", g, i, got, want)
				}
				runtime.Gosched()
			}
		})
	}
	wg.Wait()
}

// TestGenericBlockFunction: the block function without SSE4.1 (the portable one's rounds)
// gives the same keys.
func TestGenericBlockFunction(t *testing.T) {
	defer func(v bool) { useSSE4 = v }(useSSE4)
	useSSE4 = false
	for _, v := range vectors[:4] {
		want, _ := hex.DecodeString(v.hash)
		if got := Key([]byte("password"), []byte("somesalt"), v.time, v.memory, v.threads, uint32(len(want))); !bytes.Equal(got, want) {
			t.Errorf("t=%d m=%d p=%d: %x, want %x", v.time, v.memory, v.threads, got, want)
		}
	}
}

// TestPortableBlockFunction: the portable block function (blamka_generic.go, what other
// platforms and purego builds run) gives what processBlock and processBlockXOR give here.
func TestPortableBlockFunction(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 50 {
		in := garbage(r, 3)
		for _, xor := range []bool{false, true} {
			want, got := in[0], in[0]
			if xor {
				processBlockXOR(&want, &in[1], &in[2])
			} else {
				processBlock(&want, &in[1], &in[2])
			}
			processBlockGeneric(&got, &in[1], &in[2], xor)
			if got != want {
				t.Fatalf("xor %v: the portable block function differs", xor)
			}
		}
	}
}

func TestPanics(t *testing.T) {
	for _, c := range []struct {
		time    uint32
		threads uint8
	}{{0, 1}, {1, 0}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("time %d, threads %d: no panic", c.time, c.threads)
				}
			}()
			Key([]byte("pw"), []byte("somesalt"), c.time, 64, c.threads, 32)
		}()
	}
}

// FuzzKey compares Key with x/crypto on small matrices that the hashes before left dirty.
func FuzzKey(f *testing.F) {
	f.Add([]byte("password"), []byte("somesalt"), uint8(1), uint16(64), uint8(1), uint8(32))
	f.Add([]byte(""), []byte(""), uint8(3), uint16(9), uint8(2), uint8(4))
	f.Add([]byte("\xff\x00"), []byte("s"), uint8(2), uint16(700), uint8(5), uint8(200))
	f.Fuzz(func(t *testing.T, pw, salt []byte, time uint8, memory uint16, threads uint8, keyLen uint8) {
		tm, th := uint32(time%4)+1, threads%8+1
		mem, kl := uint32(memory%2048), uint32(keyLen)+4
		want := argon2.IDKey(pw, salt, tm, mem, th, kl)
		if got := Key(pw, salt, tm, mem, th, kl); !bytes.Equal(got, want) {
			t.Fatalf("t=%d m=%d p=%d len=%d: %x, want %x", tm, mem, th, kl, got, want)
		}
	})
}

// The server's parameters (password.Options{}): m=47104 KiB, t=1, p=1. The allocations
// column is the point: x/crypto's 46 MiB per hash against none once the pool holds a matrix.
func BenchmarkKey(b *testing.B) {
	salt := []byte("0123456789abcdef")
	b.Run("pooled", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			Key([]byte("password"), salt, 1, 47104, 1, 32)
		}
	})
	b.Run("x-crypto", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			argon2.IDKey([]byte("password"), salt, 1, 47104, 1, 32)
		}
	})
}
