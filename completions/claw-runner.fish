# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_claw_runner_global_optspecs
    string join \n config= gateway= ca-cert= h/help V/version
end

function __fish_claw_runner_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_claw_runner_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_claw_runner_using_subcommand
    set -l cmd (__fish_claw_runner_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c claw-runner -n "__fish_claw_runner_needs_command" -l config -d 'Configuration file [default: $XDG_CONFIG_HOME/claw/runner.toml]' -r -F
complete -c claw-runner -n "__fish_claw_runner_needs_command" -l gateway -d 'The gateway, e.g. https://gateway.example:3100 (CLAW_GATEWAY_URL)' -r
complete -c claw-runner -n "__fish_claw_runner_needs_command" -l ca-cert -d 'PEM certificate to trust for a self-signed gateway (CLAW_CA_CERT)' -r -F
complete -c claw-runner -n "__fish_claw_runner_needs_command" -s h -l help -d 'Print help'
complete -c claw-runner -n "__fish_claw_runner_needs_command" -s V -l version -d 'Print version'
complete -c claw-runner -n "__fish_claw_runner_needs_command" -f -a "start" -d 'Run the agent for a run and stream its output; exits with the agent\'s exit code'
complete -c claw-runner -n "__fish_claw_runner_needs_command" -f -a "enroll" -d 'Make this host a member of the gateway: spend a one-time enrolment token (from `clawctl hosts add NAME` or the Hosts page) for the host\'s own key, kept 0600 in the state directory. Pass --gateway, and --ca-cert or --fingerprint for a self-signed gateway'
complete -c claw-runner -n "__fish_claw_runner_needs_command" -f -a "serve" -d 'Run as this enrolled host\'s service: stay connected to the gateway, say which agents and workspaces it offers, and start sessions it is asked for. Exits 78 when the gateway refuses the host (revoked)'
complete -c claw-runner -n "__fish_claw_runner_needs_command" -f -a "test-connection" -d 'Check the gateway: TLS, clock difference, and whether it accepts our signatures'
complete -c claw-runner -n "__fish_claw_runner_needs_command" -f -a "info" -d 'Print the effective configuration (secrets masked)'
complete -c claw-runner -n "__fish_claw_runner_needs_command" -f -a "assist" -d 'Ask the runner of a run on this host to start a tmate session and post its links to the run'
complete -c claw-runner -n "__fish_claw_runner_needs_command" -f -a "upload" -d 'Upload a file as an artifact of a run, trying again for up to two minutes while the gateway cannot take it yet (its artifact store away, busy, restarting)'
complete -c claw-runner -n "__fish_claw_runner_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c claw-runner -n "__fish_claw_runner_using_subcommand start" -l run-id -d 'The run id (from `clawctl runs create` or the web UI)' -r
complete -c claw-runner -n "__fish_claw_runner_using_subcommand start" -l token -d 'The run\'s capability token (shown once when the run was created)' -r
complete -c claw-runner -n "__fish_claw_runner_using_subcommand start" -l cwd -d 'Working directory of the agent and of queued commands' -r -F
complete -c claw-runner -n "__fish_claw_runner_using_subcommand start" -l agent -d 'Drive this agent through its structured interface (prompts, tool calls, diffs) as the run was created for: `claude`' -r -f -a "claude\t''"
complete -c claw-runner -n "__fish_claw_runner_using_subcommand start" -l config -d 'Configuration file [default: $XDG_CONFIG_HOME/claw/runner.toml]' -r -F
complete -c claw-runner -n "__fish_claw_runner_using_subcommand start" -l gateway -d 'The gateway, e.g. https://gateway.example:3100 (CLAW_GATEWAY_URL)' -r
complete -c claw-runner -n "__fish_claw_runner_using_subcommand start" -l ca-cert -d 'PEM certificate to trust for a self-signed gateway (CLAW_CA_CERT)' -r -F
complete -c claw-runner -n "__fish_claw_runner_using_subcommand start" -s h -l help -d 'Print help'
complete -c claw-runner -n "__fish_claw_runner_using_subcommand enroll" -l token -d 'The enrolment token (valid for an hour, once)' -r
complete -c claw-runner -n "__fish_claw_runner_using_subcommand enroll" -l fingerprint -d 'Trust the gateway\'s certificate with this SHA-256 fingerprint (as `clawctl certs show` prints it)' -r
complete -c claw-runner -n "__fish_claw_runner_using_subcommand enroll" -l config -d 'Configuration file [default: $XDG_CONFIG_HOME/claw/runner.toml]' -r -F
complete -c claw-runner -n "__fish_claw_runner_using_subcommand enroll" -l gateway -d 'The gateway, e.g. https://gateway.example:3100 (CLAW_GATEWAY_URL)' -r
complete -c claw-runner -n "__fish_claw_runner_using_subcommand enroll" -l ca-cert -d 'PEM certificate to trust for a self-signed gateway (CLAW_CA_CERT)' -r -F
complete -c claw-runner -n "__fish_claw_runner_using_subcommand enroll" -s h -l help -d 'Print help'
complete -c claw-runner -n "__fish_claw_runner_using_subcommand serve" -l config -d 'Configuration file [default: $XDG_CONFIG_HOME/claw/runner.toml]' -r -F
complete -c claw-runner -n "__fish_claw_runner_using_subcommand serve" -l gateway -d 'The gateway, e.g. https://gateway.example:3100 (CLAW_GATEWAY_URL)' -r
complete -c claw-runner -n "__fish_claw_runner_using_subcommand serve" -l ca-cert -d 'PEM certificate to trust for a self-signed gateway (CLAW_CA_CERT)' -r -F
complete -c claw-runner -n "__fish_claw_runner_using_subcommand serve" -s h -l help -d 'Print help'
complete -c claw-runner -n "__fish_claw_runner_using_subcommand test-connection" -l config -d 'Configuration file [default: $XDG_CONFIG_HOME/claw/runner.toml]' -r -F
complete -c claw-runner -n "__fish_claw_runner_using_subcommand test-connection" -l gateway -d 'The gateway, e.g. https://gateway.example:3100 (CLAW_GATEWAY_URL)' -r
complete -c claw-runner -n "__fish_claw_runner_using_subcommand test-connection" -l ca-cert -d 'PEM certificate to trust for a self-signed gateway (CLAW_CA_CERT)' -r -F
complete -c claw-runner -n "__fish_claw_runner_using_subcommand test-connection" -s h -l help -d 'Print help'
complete -c claw-runner -n "__fish_claw_runner_using_subcommand info" -l config -d 'Configuration file [default: $XDG_CONFIG_HOME/claw/runner.toml]' -r -F
complete -c claw-runner -n "__fish_claw_runner_using_subcommand info" -l gateway -d 'The gateway, e.g. https://gateway.example:3100 (CLAW_GATEWAY_URL)' -r
complete -c claw-runner -n "__fish_claw_runner_using_subcommand info" -l ca-cert -d 'PEM certificate to trust for a self-signed gateway (CLAW_CA_CERT)' -r -F
complete -c claw-runner -n "__fish_claw_runner_using_subcommand info" -s h -l help -d 'Print help'
complete -c claw-runner -n "__fish_claw_runner_using_subcommand assist" -l run-id -d 'The run id' -r
complete -c claw-runner -n "__fish_claw_runner_using_subcommand assist" -l config -d 'Configuration file [default: $XDG_CONFIG_HOME/claw/runner.toml]' -r -F
complete -c claw-runner -n "__fish_claw_runner_using_subcommand assist" -l gateway -d 'The gateway, e.g. https://gateway.example:3100 (CLAW_GATEWAY_URL)' -r
complete -c claw-runner -n "__fish_claw_runner_using_subcommand assist" -l ca-cert -d 'PEM certificate to trust for a self-signed gateway (CLAW_CA_CERT)' -r -F
complete -c claw-runner -n "__fish_claw_runner_using_subcommand assist" -s h -l help -d 'Print help'
complete -c claw-runner -n "__fish_claw_runner_using_subcommand upload" -l run-id -d 'The run id' -r
complete -c claw-runner -n "__fish_claw_runner_using_subcommand upload" -l token -d 'The run\'s capability token' -r
complete -c claw-runner -n "__fish_claw_runner_using_subcommand upload" -l config -d 'Configuration file [default: $XDG_CONFIG_HOME/claw/runner.toml]' -r -F
complete -c claw-runner -n "__fish_claw_runner_using_subcommand upload" -l gateway -d 'The gateway, e.g. https://gateway.example:3100 (CLAW_GATEWAY_URL)' -r
complete -c claw-runner -n "__fish_claw_runner_using_subcommand upload" -l ca-cert -d 'PEM certificate to trust for a self-signed gateway (CLAW_CA_CERT)' -r -F
complete -c claw-runner -n "__fish_claw_runner_using_subcommand upload" -s h -l help -d 'Print help'
complete -c claw-runner -n "__fish_claw_runner_using_subcommand help; and not __fish_seen_subcommand_from start enroll serve test-connection info assist upload help" -f -a "start" -d 'Run the agent for a run and stream its output; exits with the agent\'s exit code'
complete -c claw-runner -n "__fish_claw_runner_using_subcommand help; and not __fish_seen_subcommand_from start enroll serve test-connection info assist upload help" -f -a "enroll" -d 'Make this host a member of the gateway: spend a one-time enrolment token (from `clawctl hosts add NAME` or the Hosts page) for the host\'s own key, kept 0600 in the state directory. Pass --gateway, and --ca-cert or --fingerprint for a self-signed gateway'
complete -c claw-runner -n "__fish_claw_runner_using_subcommand help; and not __fish_seen_subcommand_from start enroll serve test-connection info assist upload help" -f -a "serve" -d 'Run as this enrolled host\'s service: stay connected to the gateway, say which agents and workspaces it offers, and start sessions it is asked for. Exits 78 when the gateway refuses the host (revoked)'
complete -c claw-runner -n "__fish_claw_runner_using_subcommand help; and not __fish_seen_subcommand_from start enroll serve test-connection info assist upload help" -f -a "test-connection" -d 'Check the gateway: TLS, clock difference, and whether it accepts our signatures'
complete -c claw-runner -n "__fish_claw_runner_using_subcommand help; and not __fish_seen_subcommand_from start enroll serve test-connection info assist upload help" -f -a "info" -d 'Print the effective configuration (secrets masked)'
complete -c claw-runner -n "__fish_claw_runner_using_subcommand help; and not __fish_seen_subcommand_from start enroll serve test-connection info assist upload help" -f -a "assist" -d 'Ask the runner of a run on this host to start a tmate session and post its links to the run'
complete -c claw-runner -n "__fish_claw_runner_using_subcommand help; and not __fish_seen_subcommand_from start enroll serve test-connection info assist upload help" -f -a "upload" -d 'Upload a file as an artifact of a run, trying again for up to two minutes while the gateway cannot take it yet (its artifact store away, busy, restarting)'
complete -c claw-runner -n "__fish_claw_runner_using_subcommand help; and not __fish_seen_subcommand_from start enroll serve test-connection info assist upload help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
