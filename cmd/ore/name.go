package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/orecdn/ore/node"
)

const (
	apiNamePublish = "/api/v0/name/publish"
	apiNameResolve = "/api/v0/name/resolve"
)

// cmdName publishes and resolves IPNS names: the box's peer ID names a CID
// through a signed record in ore's DHT.
func cmdName(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || (args[0] != "publish" && args[0] != "resolve") {
		return fmt.Errorf("%w: ore name publish CID [--key NAME] [--lifetime 48h] | ore name resolve NAME", errUsage)
	}
	sub, args := args[0], args[1:]
	fs := newFlags(e, "name "+sub, map[string]string{"publish": "[flags] CID", "resolve": "[flags] NAME"}[sub])
	repo := repoFlag(e, fs)
	lifetime, key := new(time.Duration), new(string)
	if sub == "publish" {
		lifetime = fs.Duration("lifetime", node.DefaultNameLifetime, "how long the record stays valid (the box republishes it while it runs)")
		key = fs.String("key", node.SelfKey, "the key that signs: \"self\" (the box's peer ID is the name) or a name of your own (a key made in the repo on first use, one name per site)")
	}
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(pos, 1, map[string]string{"publish": "one CID", "resolve": "one NAME"}[sub]); err != nil {
		return err
	}
	c, err := newClient(*repo)
	if err != nil {
		return err
	}
	var res node.NameResult
	if sub == "publish" {
		if _, err := node.ParseCID(pos[0]); err != nil {
			return err
		}
		if *lifetime <= 0 {
			return fmt.Errorf("%w: --lifetime %s: give a positive duration, like 48h", errUsage, *lifetime)
		}
		q := url.Values{"cid": {pos[0]}, "lifetime": {lifetime.String()}, "key": {*key}}
		err = c.postJSON(ctx, apiNamePublish+"?"+q.Encode(), &res)
	} else {
		err = c.getJSON(ctx, apiNameResolve+"?"+url.Values{"name": {pos[0]}}.Encode(), &res)
	}
	if err != nil {
		return withHint(*repo, err)
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(res)
	}
	if sub == "publish" {
		fmt.Fprintf(e.stdout, "/ipns/%s → /ipfs/%s (sequence %d, valid until %s, ttl %s)\n", res.Name, res.Root, res.Sequence, res.EOL.UTC().Format(time.RFC3339), res.TTL)
	} else {
		fmt.Fprintf(e.stdout, "/ipfs/%s\n", res.Root)
	}
	return nil
}

func (s *apiServer) namePublish(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	root, err := node.ParseCID(q.Get("cid"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	lifetime, err := time.ParseDuration(q.Get("lifetime"))
	if err != nil || lifetime <= 0 {
		http.Error(w, "lifetime must be a positive duration, like 48h", http.StatusBadRequest)
		return
	}
	res, err := s.n.PublishName(r.Context(), q.Get("key"), root, lifetime)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	writeJSON(w, res)
}

func (s *apiServer) nameResolve(w http.ResponseWriter, r *http.Request) {
	res, err := s.n.ResolveName(r.Context(), r.URL.Query().Get("name"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	writeJSON(w, res)
}

// resolveArg turns `ore get`'s argument into a CID: a CID, /ipfs/CID, or
// /ipns/NAME resolved through the daemon.
func resolveArg(ctx context.Context, c *client, arg string) (cid.Cid, error) {
	if len(arg) > 6 && arg[:6] == "/ipns/" {
		var res node.NameResult
		if err := c.getJSON(ctx, apiNameResolve+"?"+url.Values{"name": {arg}}.Encode(), &res); err != nil {
			return cid.Undef, err
		}
		return res.Root, nil
	}
	if len(arg) > 6 && arg[:6] == "/ipfs/" {
		arg = arg[6:]
	}
	return node.ParseCID(arg)
}
