package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"

	"github.com/dustin/go-humanize"

	"github.com/orecdn/ore/node"
)

func cmdGateway(ctx context.Context, e *env, args []string) error {
	return runDaemon(ctx, e, "gateway", args, true)
}

func cmdDag(ctx context.Context, e *env, args []string) error {
	sub, rest, done, err := subcommand(e, "usage: ore dag import FILE.car | ore dag export CID > FILE.car", "import or export", args)
	if done {
		return err
	}
	switch sub {
	case "import":
		return dagImport(ctx, e, rest)
	case "export":
		return dagExport(ctx, e, rest)
	}
	return fmt.Errorf("%w: unknown dag command %q (import or export)", errUsage, sub)
}

func dagImport(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "dag import", "[flags] FILE.car")
	repo := repoFlag(e, fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 1, "one CAR file"); err != nil {
		return err
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", pos[0], err)
	}
	defer f.Close()
	st, _ := f.Stat()
	c, err := newClient(*repo)
	if err != nil {
		return err
	}
	bar := newProgress(e.stderr, "import")
	body := &countReader{r: f, onRead: func(n int64) { bar.update(n, st.Size(), "") }}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+apiDagImport, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/vnd.ipld.car")
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	line, err := readStream(resp.Body, nil)
	if err != nil {
		return err
	}
	if line.Imported == nil {
		return errors.New("the daemon sent no result")
	}
	bar.done(line.Imported.Bytes, line.Imported.Bytes, "")
	for _, r := range line.Imported.Roots {
		fmt.Fprintf(e.stdout, "imported %s (%d blocks, %s)\n", r, line.Imported.Blocks, humanize.IBytes(uint64(line.Imported.Bytes)))
	}
	return nil
}

func dagExport(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "dag export", "[flags] CID > FILE.car")
	repo := repoFlag(e, fs)
	pos, c, err := daemonArgs(fs, repo, args, 1, "one CID")
	if err != nil {
		return err
	}
	root, err := node.ParseCID(pos[0])
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+apiDagExport+"?"+url.Values{"cid": {root.String()}}.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	n, err := io.Copy(e.stdout, resp.Body)
	if err != nil {
		return fmt.Errorf("export broke off after %d bytes: %w", n, err)
	}
	if resp.Trailer.Get("X-Ore-Error") != "" {
		return errors.New(resp.Trailer.Get("X-Ore-Error"))
	}
	fmt.Fprintf(e.stderr, "exported %s (%s)\n", root, humanize.IBytes(uint64(n)))
	return nil
}
