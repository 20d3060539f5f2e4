package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"

	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/config"
	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/demo"
	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/hangup"
	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/service"
)

func cmdServe(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("fanbridge", usage+"\nservice flags:\n", stderr)
	var (
		cfgPath     = fs.String("config", "", "configuration file (YAML); without it fanbridge runs the demo (an empty value is refused)")
		listen      = fs.String("listen", "", "listen address, overriding listen.address (demo: default 127.0.0.1:8080, or a free port when taken)")
		kafkaPort   portFlag
		apiKey      = fs.String("api-key", "", "demo only: the intake API key (default: generated)")
		dlqDir      = fs.String("dlq-dir", "", "demo only: dead-letter directory (default: a new temporary directory)")
		sendSamples = fs.Bool("send-samples", false, "demo only: post every embedded Genesys sample once the service is up")
	)
	fs.Var(&kafkaPort, "kafka-port", "demo only: `port` of the in-process Kafka broker on 127.0.0.1 (default 9092, or a free port when taken; 0 = any free port)")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "fanbridge: unexpected argument %q\n", pos[0])
		return exitUsage
	}
	// A flag given an empty value, as -config "$CFG" gives it when CFG is unset, would mean what
	// leaving it out means: for -config, the demo (in-process Kafka, a generated key, a temporary
	// queue) on the address of a production service, whose senders would all be refused.
	empty := ""
	fs.Visit(func(f *flag.Flag) {
		if _, ok := leftOut[f.Name]; ok && empty == "" && f.Value.String() == "" {
			empty = f.Name
		}
	})
	if empty != "" {
		fmt.Fprintf(stderr, "fanbridge: -%s is empty; leave the flag out for %s\n", empty, leftOut[empty])
		return exitUsage
	}
	if *cfgPath != "" {
		// A demo flag beside -config would be silently ignored: the file decides those things.
		bad := ""
		fs.Visit(func(f *flag.Flag) {
			switch f.Name {
			case "kafka-port", "api-key", "dlq-dir", "send-samples":
				if bad == "" {
					bad = f.Name
				}
			}
		})
		if bad != "" {
			fmt.Fprintf(stderr, "fanbridge: -%s is for the demo only; with -config, the configuration file decides it\n", bad)
			return exitUsage
		}
	}

	// SIGHUP is taken from the process's start (package hangup), so that one sent while the
	// service starts (or, at the end, while the demo's broker closes) does not end the process
	// with the signal's default action; one that arrives before the service exists is kept and
	// reloads the file once it runs.
	hup := hangup.Take()
	defer hangup.Release()

	var (
		cfg   *config.Config
		env   *demo.Env
		opts  service.Options
		log   *slog.Logger
		level *slog.LevelVar
		err   error
	)
	if *cfgPath != "" {
		text, rerr := os.ReadFile(*cfgPath)
		if rerr != nil {
			fmt.Fprintln(stderr, "config:", rerr)
			return exitFail
		}
		cfg, err = config.Parse(text, nil)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return exitFail
		}
		log, level = service.NewLogger(cfg.Logging, stderr)
		opts = service.Options{ConfigPath: *cfgPath, ConfigText: text, ListenAddress: *listen, Logger: log, Level: level}
	} else {
		log, level = service.NewLogger(config.Logging{Level: "info", Format: "text"}, stderr)
		env, err = demo.Start(demo.Options{Listen: *listen, KafkaPort: kafkaPort.port(), APIKey: *apiKey, DLQDir: *dlqDir, Logger: log.With("component", "demo")})
		if err != nil {
			fmt.Fprintln(stderr, "fanbridge demo:", err)
			return exitFail
		}
		defer env.Close()
		cfg = env.Config
		opts = service.Options{Logger: log, Level: level, Listener: env.Listener}
	}

	svc, err := service.New(cfg, opts)
	if err != nil {
		log.Error("cannot start", "err", err)
		return exitFail
	}
	if env != nil {
		env.Banner(stdout)
	}

	// One registration for the whole life of the process: the first SIGINT or SIGTERM starts the
	// shutdown, a second one ends the process. Registering again after the first would leave an
	// instant in which a second signal is dropped, or kills the process with the default action.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	ctx, stop := context.WithCancel(context.Background())
	// The goroutines below end before cmdServe returns: neither channel they read is ever closed,
	// and one left reading SIGHUP would take, for a service that stopped, the reloads meant for
	// a later one in the same process.
	done := make(chan struct{})
	var background sync.WaitGroup
	defer func() {
		stop()
		close(done)
		background.Wait()
	}()
	background.Go(func() {
		for {
			select {
			case <-hup:
			case <-done:
				return
			}
			if *cfgPath == "" {
				log.Warn("SIGHUP ignored: the demo has no configuration file to reload")
				continue
			}
			log.Info("SIGHUP: reloading configuration", "path", *cfgPath)
			_ = svc.ReloadFile()
		}
	})
	background.Go(func() {
		select {
		case <-sigs:
			stop()
		case <-done:
			return
		}
		// A second Ctrl-C or SIGTERM while draining ends the process at once.
		select {
		case <-sigs:
			fmt.Fprintln(stderr, "fanbridge: second signal, exiting without finishing the drain")
			os.Exit(130)
		case <-done:
		}
	})
	if env != nil && *sendSamples {
		background.Go(func() {
			if err := demo.Send(ctx, env.IntakeURL(), env.APIKey, stdout); err != nil {
				log.Warn("sending samples", "err", err)
			}
		})
	}

	if err := svc.Run(ctx); err != nil {
		log.Error("stopped with errors", "err", err)
		return exitFail
	}
	return exitOK
}

// leftOut says, for each service flag that takes text, what leaving it out means; given empty,
// the flag is refused rather than taken as left out.
var leftOut = map[string]string{
	"config":  "the demo",
	"listen":  "listen.address (the demo: 127.0.0.1:8080)",
	"api-key": "a generated key",
	"dlq-dir": "a temporary directory",
}

// portFlag is -kafka-port: a TCP port, or unset (-1 to the demo: 9092, or a free one when taken).
// Its help shows no "(default -1)" beside the default the text explains.
type portFlag struct {
	n   int
	set bool
}

func (p *portFlag) String() string {
	if p == nil || !p.set {
		return ""
	}
	return strconv.Itoa(p.n)
}

func (p *portFlag) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("want a port from 0 to 65535")
	}
	p.n, p.set = n, true
	return nil
}

func (p *portFlag) port() int {
	if !p.set {
		return -1
	}
	return p.n
}
