// Copyright 2017 The Go Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

// Package argon2id is golang.org/x/crypto/argon2's Argon2id (v0.58.0) with one change: the
// memory of a hash is reused by the next one instead of allocated afresh.
//
// x/crypto allocates the whole matrix (46 MiB with the server's parameters) on every call:
// the runtime zeroes it or faults it in from the system, and the collector runs every few
// hashes to take it back. On the machine of docs/performance.md that made two goroutines
// hash at 69–71/s where the same loop with the memory reused hashes at 95/s. Here the
// matrices wait in a sync.Pool between hashes, so a server hashing under load keeps as many
// as it hashes at once (password.Hasher bounds that), and an idle one gives them back to the
// collector within two cycles.
//
// A reused matrix holds the blocks of the hash before it, so the first pass writes each
// block (out = G(prev, ref)) instead of XORing into it as x/crypto does on its zeroed
// matrix; RFC 9106 section 3.2 specifies exactly that, and later passes XOR as in version
// 0x13. Every block a pass reads has been written earlier in the same hash, so nothing of
// the previous hash reaches the result; TestReusedMemory checks it against x/crypto on
// matrices filled with garbage. Like x/crypto's, a matrix is not wiped after use: the
// password-derived blocks stay in memory until they are overwritten, in x/crypto's case by
// whatever the freed memory is allocated to next.
//
// The block function (blamka_*.go, blamka_amd64.s, blake2b.go) is x/crypto's, copied
// unchanged but for the package name and the loong64 variant left out. LICENSE is
// x/crypto's.
package argon2id

import (
	"encoding/binary"
	"sync"

	"golang.org/x/crypto/blake2b"
)

// Version is the Argon2 version implemented by this package (0x13, RFC 9106).
const Version = 0x13

const argon2id = 2 // the type's number in the parameter block (0 Argon2d, 1 Argon2i)

// Key derives a key of keyLen bytes from password and salt with Argon2id: time passes over
// memory KiB on threads lanes. It returns what golang.org/x/crypto/argon2.IDKey returns for
// the same arguments, and panics as it does when time or threads is zero.
func Key(password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
	if time < 1 {
		panic("argon2: number of rounds too small")
	}
	if threads < 1 {
		panic("argon2: parallelism degree too low")
	}
	m := getMatrix(blocks(memory, threads))
	key := derive(*m, password, salt, time, memory, threads, keyLen)
	matrices.Put(m)
	return key
}

// blocks returns how many blocks a hash of memory KiB on threads lanes uses: memory rounded
// down to a multiple of 4 × threads, and at least 8 × threads.
func blocks(memory uint32, threads uint8) uint32 {
	n := memory / (syncPoints * uint32(threads)) * (syncPoints * uint32(threads))
	return max(n, 2*syncPoints*uint32(threads))
}

// derive is Key on the matrix m, which has at least blocks(memory, threads) blocks holding
// anything.
func derive(m []block, password, salt []byte, time, memory uint32, threads uint8, keyLen uint32) []byte {
	h0 := initHash(password, salt, nil, nil, time, memory, uint32(threads), keyLen, argon2id)
	n := blocks(memory, threads)
	B := m[:n]
	initBlocks(B, &h0, n, uint32(threads))
	processBlocks(B, time, n, uint32(threads), argon2id)
	return extractKey(B, n, uint32(threads), keyLen)
}

// matrices holds *[]block between hashes.
var matrices sync.Pool

// getMatrix returns a matrix of at least memory blocks from the pool, or a new one. One too
// small (a hash with other parameters, say one stored before they were raised) is left to
// the collector.
func getMatrix(memory uint32) *[]block {
	if m, ok := matrices.Get().(*[]block); ok && uint32(cap(*m)) >= memory {
		return m
	}
	b := make([]block, memory)
	return &b
}

const (
	blockLength = 128
	syncPoints  = 4
)

type block [blockLength]uint64

func initHash(password, salt, key, data []byte, time, memory, threads, keyLen uint32, mode int) [blake2b.Size + 8]byte {
	var (
		h0     [blake2b.Size + 8]byte
		params [24]byte
		tmp    [4]byte
	)

	b2, _ := blake2b.New512(nil)
	binary.LittleEndian.PutUint32(params[0:4], threads)
	binary.LittleEndian.PutUint32(params[4:8], keyLen)
	binary.LittleEndian.PutUint32(params[8:12], memory)
	binary.LittleEndian.PutUint32(params[12:16], time)
	binary.LittleEndian.PutUint32(params[16:20], uint32(Version))
	binary.LittleEndian.PutUint32(params[20:24], uint32(mode))
	b2.Write(params[:])
	binary.LittleEndian.PutUint32(tmp[:], uint32(len(password)))
	b2.Write(tmp[:])
	b2.Write(password)
	binary.LittleEndian.PutUint32(tmp[:], uint32(len(salt)))
	b2.Write(tmp[:])
	b2.Write(salt)
	binary.LittleEndian.PutUint32(tmp[:], uint32(len(key)))
	b2.Write(tmp[:])
	b2.Write(key)
	binary.LittleEndian.PutUint32(tmp[:], uint32(len(data)))
	b2.Write(tmp[:])
	b2.Write(data)
	b2.Sum(h0[:0])
	return h0
}

// initBlocks writes the first two blocks of each lane (x/crypto's initBlocks, on a matrix
// it is given).
func initBlocks(B []block, h0 *[blake2b.Size + 8]byte, memory, threads uint32) {
	var block0 [1024]byte
	for lane := uint32(0); lane < threads; lane++ {
		j := lane * (memory / threads)
		binary.LittleEndian.PutUint32(h0[blake2b.Size+4:], lane)

		binary.LittleEndian.PutUint32(h0[blake2b.Size:], 0)
		blake2bHash(block0[:], h0[:])
		for i := range B[j+0] {
			B[j+0][i] = binary.LittleEndian.Uint64(block0[i*8:])
		}

		binary.LittleEndian.PutUint32(h0[blake2b.Size:], 1)
		blake2bHash(block0[:], h0[:])
		for i := range B[j+1] {
			B[j+1][i] = binary.LittleEndian.Uint64(block0[i*8:])
		}
	}
}

// processBlocks is x/crypto's, but for the first pass writing its blocks instead of XORing
// into them (see the package's comment).
func processBlocks(B []block, time, memory, threads uint32, mode int) {
	lanes := memory / threads
	segments := lanes / syncPoints

	processSegment := func(n, slice, lane uint32, wg *sync.WaitGroup) {
		var addresses, in, zero block
		if n == 0 && slice < syncPoints/2 {
			in[0] = uint64(n)
			in[1] = uint64(lane)
			in[2] = uint64(slice)
			in[3] = uint64(memory)
			in[4] = uint64(time)
			in[5] = uint64(mode)
		}

		index := uint32(0)
		if n == 0 && slice == 0 {
			index = 2 // we have already generated the first two blocks
			in[6]++
			processBlock(&addresses, &in, &zero)
			processBlock(&addresses, &addresses, &zero)
		}

		offset := lane*lanes + slice*segments + index
		var random uint64
		for index < segments {
			prev := offset - 1
			if index == 0 && slice == 0 {
				prev += lanes // last block in lane
			}
			if n == 0 && slice < syncPoints/2 {
				if index%blockLength == 0 {
					in[6]++
					processBlock(&addresses, &in, &zero)
					processBlock(&addresses, &addresses, &zero)
				}
				random = addresses[index%blockLength]
			} else {
				random = B[prev][0]
			}
			newOffset := indexAlpha(random, lanes, segments, threads, n, slice, lane, index)
			if n == 0 {
				processBlock(&B[offset], &B[prev], &B[newOffset])
			} else {
				processBlockXOR(&B[offset], &B[prev], &B[newOffset])
			}
			index, offset = index+1, offset+1
		}
		wg.Done()
	}

	for n := uint32(0); n < time; n++ {
		for slice := uint32(0); slice < syncPoints; slice++ {
			var wg sync.WaitGroup
			for lane := uint32(0); lane < threads; lane++ {
				wg.Add(1)
				go processSegment(n, slice, lane, &wg)
			}
			wg.Wait()
		}
	}
}

func extractKey(B []block, memory, threads, keyLen uint32) []byte {
	lanes := memory / threads
	for lane := uint32(0); lane < threads-1; lane++ {
		for i, v := range B[(lane*lanes)+lanes-1] {
			B[memory-1][i] ^= v
		}
	}

	var block [1024]byte
	for i, v := range B[memory-1] {
		binary.LittleEndian.PutUint64(block[i*8:], v)
	}
	key := make([]byte, keyLen)
	blake2bHash(key, block[:])
	return key
}

func indexAlpha(rand uint64, lanes, segments, threads, n, slice, lane, index uint32) uint32 {
	refLane := uint32(rand>>32) % threads
	if n == 0 && slice == 0 {
		refLane = lane
	}
	m, s := 3*segments, ((slice+1)%syncPoints)*segments
	if lane == refLane {
		m += index
	}
	if n == 0 {
		m, s = slice*segments, 0
		if slice == 0 || lane == refLane {
			m += index
		}
	}
	if index == 0 || lane == refLane {
		m--
	}
	return phi(rand, uint64(m), uint64(s), refLane, lanes)
}

func phi(rand, m, s uint64, lane, lanes uint32) uint32 {
	p := rand & 0xFFFFFFFF
	p = (p * p) >> 32
	p = (p * m) >> 32
	return lane*lanes + uint32((s+m-(p+1))%uint64(lanes))
}
