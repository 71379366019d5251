// Command render loads a compose project with compose-spec's own loader (the library `docker compose` is built
// on) and prints the resolved model as JSON, like `docker compose config --format json`: the process
// environment wins over the project's .env, ${VAR:-default} is interpolated, COMPOSE_PROFILES / --profile select
// services, and paths are resolved. Tests use it to check docker-compose.yml where no Docker engine runs.
//
//	render [--project-directory DIR] [-f FILE]... [--env-file FILE]... [--profile NAME]...
//
// The option sequence mirrors docker/compose's configOptions.toProjectOptionsFns (cmd/compose/config.go) followed
// by ProjectOptions.toProjectOptions (cmd/compose/compose.go).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var files, envFiles, profiles list
	projectDir := flag.String("project-directory", "", "project directory (default: the first file's directory)")
	flag.Var(&files, "f", "compose file (repeatable; default: compose.yaml/docker-compose.yml discovery)")
	flag.Var(&envFiles, "env-file", "environment file (repeatable; default: .env in the project directory)")
	flag.Var(&profiles, "profile", "profile to enable (repeatable; default: COMPOSE_PROFILES)")
	flag.Parse()

	if err := render(*projectDir, files, envFiles, profiles); err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}

func render(projectDir string, files, envFiles, profiles []string) error {
	// docker compose config: its own options first, then the ones every command shares.
	options, err := cli.NewProjectOptions(files,
		cli.WithInterpolation(true),
		cli.WithResolvedPaths(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
		cli.WithDefaultProfiles(profiles...),
		cli.WithDiscardEnvFile,
		cli.WithWorkingDirectory(projectDir),
		cli.WithOsEnv,
		cli.WithEnvFiles(envFiles...),
		cli.WithDotEnv,
		cli.WithConfigFileEnv,
		cli.WithDefaultConfigPath,
		cli.WithEnvFiles(envFiles...),
		cli.WithDotEnv,
		cli.WithDefaultProfiles(profiles...),
	)
	if err != nil {
		return err
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		return err
	}
	out, err := project.MarshalJSON()
	if err != nil {
		return err
	}
	_, err = fmt.Println(string(out))
	return err
}
