// Command fn is the compute package's test function, a WASI command built
// with GOOS=wasip1 GOARCH=wasm (see ../../gen.sh). Its first argument picks
// what it does with stdin; some modes are honest transforms, the others
// are the hostile jobs the runtime must contain.
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: fn gzip|upper|sha256|loop|hog|flood|probe|fail|panic|sleep")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "gzip": // stdin gzipped at the level of the second argument (default 6)
		level := gzip.DefaultCompression
		if len(os.Args) > 2 {
			fmt.Sscan(os.Args[2], &level)
		}
		zw, err := gzip.NewWriterLevel(os.Stdout, level)
		check(err)
		_, err = io.Copy(zw, os.Stdin)
		check(err)
		check(zw.Close())
	case "upper":
		in, err := io.ReadAll(os.Stdin)
		check(err)
		os.Stdout.Write(bytes.ToUpper(in))
	case "sha256":
		h := sha256.New()
		_, err := io.Copy(h, os.Stdin)
		check(err)
		fmt.Println(hex.EncodeToString(h.Sum(nil)))
	case "loop":
		for i := 0; ; i++ {
			if i < 0 {
				fmt.Println(i)
			}
		}
	case "hog":
		var keep [][]byte
		for {
			keep = append(keep, make([]byte, 1<<20))
			keep[len(keep)-1][0] = 1
		}
	case "flood":
		w := bufio.NewWriter(os.Stdout)
		line := strings.Repeat("x", 1023) + "\n"
		for {
			if _, err := w.WriteString(line); err != nil {
				os.Exit(3)
			}
		}
	case "probe": // what the outside world looks like from inside
		var b [8]byte
		crand.Read(b[:])
		fmt.Println("time", time.Now().UTC().Format(time.RFC3339Nano))
		fmt.Println("crypto/rand", hex.EncodeToString(b[:]))
		fmt.Println("math/rand", rand.Uint64())
		_, err := os.ReadFile("/etc/hostname")
		fmt.Println("file", err != nil)
		_, err = os.ReadDir(".")
		fmt.Println("dir", err != nil)
		_, err = os.NewFile(3, "preopen").Read(b[:])
		fmt.Println("fd3", err != nil)
		fmt.Println("env", len(os.Environ()))
		fmt.Println("args", strings.Join(os.Args[1:], ","))
	case "fail":
		fmt.Fprintln(os.Stderr, "fn: bad input, expected an image")
		os.Exit(3)
	case "panic":
		panic("boom")
	case "sleep":
		t := time.Now()
		time.Sleep(time.Hour)
		fmt.Println("slept", time.Since(t).Round(time.Minute))
	default:
		fmt.Fprintln(os.Stderr, "fn: unknown mode", os.Args[1])
		os.Exit(2)
	}
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "fn:", err)
		os.Exit(1)
	}
}
