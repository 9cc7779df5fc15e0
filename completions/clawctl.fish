# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_clawctl_global_optspecs
    string join \n socket= json h/help V/version
end

function __fish_clawctl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_clawctl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_clawctl_using_subcommand
    set -l cmd (__fish_clawctl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c clawctl -n "__fish_clawctl_needs_command" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_needs_command" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c clawctl -n "__fish_clawctl_needs_command" -s V -l version -d 'Print version'
complete -c clawctl -n "__fish_clawctl_needs_command" -f -a "status" -d 'Version, uptime, listeners, certificate, database and run counts'
complete -c clawctl -n "__fish_clawctl_needs_command" -f -a "health" -d 'Exit 0 only when clawd and its database answer (for monitoring)'
complete -c clawctl -n "__fish_clawctl_needs_command" -f -a "runs" -d 'List, inspect, follow, create, stop and delete runs'
complete -c clawctl -n "__fish_clawctl_needs_command" -f -a "approvals" -d 'The agents\' requests waiting for a person: list, show, allow, deny'
complete -c clawctl -n "__fish_clawctl_needs_command" -f -a "users" -d 'Manage local user accounts'
complete -c clawctl -n "__fish_clawctl_needs_command" -f -a "sessions" -d 'List and end login sessions'
complete -c clawctl -n "__fish_clawctl_needs_command" -f -a "audit" -d 'Read and verify the tamper-evident audit log'
complete -c clawctl -n "__fish_clawctl_needs_command" -f -a "backup" -d 'Take an online backup archive (or check one with `backup verify FILE`)'
complete -c clawctl -n "__fish_clawctl_needs_command" -f -a "restore" -d 'Put a backup back: database, artifacts, certificates, secrets'
complete -c clawctl -n "__fish_clawctl_needs_command" -f -a "notify" -d 'Notifications: the outbox (pending, delivered, dead letters) and the global channels (ntfy topics, webhooks)'
complete -c clawctl -n "__fish_clawctl_needs_command" -f -a "hosts" -d 'Coding hosts that run claw-runner serve: list them, add one (its one-time enrolment token), revoke or remove one'
complete -c clawctl -n "__fish_clawctl_needs_command" -f -a "secrets" -d 'Rotate the runners\' HMAC secret, the session secret or the Web Push key'
complete -c clawctl -n "__fish_clawctl_needs_command" -f -a "certs" -d 'Show, install or generate the HTTPS certificate'
complete -c clawctl -n "__fish_clawctl_needs_command" -f -a "reconcile" -d 'Find drift between the store and reality; --fix repairs what is safe'
complete -c clawctl -n "__fish_clawctl_needs_command" -f -a "db" -d 'Database schema, size and checks'
complete -c clawctl -n "__fish_clawctl_needs_command" -f -a "prune" -d 'Remove finished runs past the retention with their events, commands and artifacts, artifact folders of no run, expired sessions and nonces'
complete -c clawctl -n "__fish_clawctl_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c clawctl -n "__fish_clawctl_using_subcommand status" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand status" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand status" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand health" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand health" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand health" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and not __fish_seen_subcommand_from list show tail follow create start prompt interrupt stop delete help" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and not __fish_seen_subcommand_from list show tail follow create start prompt interrupt stop delete help" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and not __fish_seen_subcommand_from list show tail follow create start prompt interrupt stop delete help" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and not __fish_seen_subcommand_from list show tail follow create start prompt interrupt stop delete help" -f -a "list" -d 'List runs, newest first'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and not __fish_seen_subcommand_from list show tail follow create start prompt interrupt stop delete help" -f -a "show" -d 'Show one run with its commands and artifacts'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and not __fish_seen_subcommand_from list show tail follow create start prompt interrupt stop delete help" -f -a "tail" -d 'Print a run\'s output; stdout and stderr go to the same streams here'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and not __fish_seen_subcommand_from list show tail follow create start prompt interrupt stop delete help" -f -a "follow" -d 'Follow an agent run as a conversation: prompts, messages, one line per tool call, turn totals (--json prints the events)'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and not __fish_seen_subcommand_from list show tail follow create start prompt interrupt stop delete help" -f -a "create" -d 'Create a run and print its id, its capability token (shown only once) and the claw-runner line that starts it'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and not __fish_seen_subcommand_from list show tail follow create start prompt interrupt stop delete help" -f -a "start" -d 'Start an agent session on an enrolled coding host (see clawctl hosts list) in one of its workspaces, and print the run\'s id. The host checks the workspace and its session limit itself'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and not __fish_seen_subcommand_from list show tail follow create start prompt interrupt stop delete help" -f -a "prompt" -d 'Send the next instruction to a run\'s agent (a finished session on a host is resumed there)'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and not __fish_seen_subcommand_from list show tail follow create start prompt interrupt stop delete help" -f -a "interrupt" -d 'End the current turn of a run\'s agent'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and not __fish_seen_subcommand_from list show tail follow create start prompt interrupt stop delete help" -f -a "stop" -d 'Ask the run\'s runner to stop the agent (SIGINT, then SIGKILL after 10 s)'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and not __fish_seen_subcommand_from list show tail follow create start prompt interrupt stop delete help" -f -a "delete" -d 'Delete a run with its events, commands and artifacts'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and not __fish_seen_subcommand_from list show tail follow create start prompt interrupt stop delete help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from list" -l state -d 'Only runs in this state' -r -f -a "pending\t''
running\t''
waiting\t''
done\t''
failed\t''
stopped\t''"
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from list" -l since -d 'Only runs created at or after this time (RFC 3339, e.g. 2026-11-01T00:00:00Z)' -r
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from list" -l limit -d 'At most this many runs' -r
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from list" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from list" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from show" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from show" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from tail" -l after -d 'Start after this event sequence number' -r
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from tail" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from tail" -s f -l follow -d 'Keep following new output until the run ends (or Ctrl-C)'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from tail" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from tail" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from follow" -l after -d 'Start after this event sequence number' -r
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from follow" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from follow" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from follow" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from create" -l command -d 'The agent command the run is for (informational)' -r
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from create" -l agent -d 'Drive this agent through its structured interface' -r -f -a "claude\t''"
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from create" -l prompt -d 'The agent\'s first instruction (- reads standard input)' -r
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from create" -l model -d 'The model the agent uses' -r
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from create" -l permission-mode -d 'How the agent asks before it acts' -r -f -a "default\t''
acceptEdits\t''
plan\t''
bypassPermissions\t''"
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from create" -l allowed-tool -d 'A tool rule the agent may use without asking, e.g. \'Bash(npm test:*)\' (repeat for more)' -r
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from create" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from create" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from create" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from start" -l host -d 'The host, by name or id' -r
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from start" -l workspace -d 'One of the host\'s workspaces, or a directory inside one' -r
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from start" -l agent -d 'The agent to run' -r -f -a "claude\t''"
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from start" -l model -d 'The model the agent uses' -r
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from start" -l permission-mode -d 'How the agent asks before it acts' -r -f -a "default\t''
acceptEdits\t''
plan\t''
bypassPermissions\t''"
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from start" -l allowed-tool -d 'A tool rule the agent may use without asking (repeat for more)' -r
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from start" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from start" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from start" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from prompt" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from prompt" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from prompt" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from interrupt" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from interrupt" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from interrupt" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from stop" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from stop" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from stop" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from delete" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from delete" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from delete" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from help" -f -a "list" -d 'List runs, newest first'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show one run with its commands and artifacts'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from help" -f -a "tail" -d 'Print a run\'s output; stdout and stderr go to the same streams here'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from help" -f -a "follow" -d 'Follow an agent run as a conversation: prompts, messages, one line per tool call, turn totals (--json prints the events)'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from help" -f -a "create" -d 'Create a run and print its id, its capability token (shown only once) and the claw-runner line that starts it'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from help" -f -a "start" -d 'Start an agent session on an enrolled coding host (see clawctl hosts list) in one of its workspaces, and print the run\'s id. The host checks the workspace and its session limit itself'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from help" -f -a "prompt" -d 'Send the next instruction to a run\'s agent (a finished session on a host is resumed there)'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from help" -f -a "interrupt" -d 'End the current turn of a run\'s agent'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from help" -f -a "stop" -d 'Ask the run\'s runner to stop the agent (SIGINT, then SIGKILL after 10 s)'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from help" -f -a "delete" -d 'Delete a run with its events, commands and artifacts'
complete -c clawctl -n "__fish_clawctl_using_subcommand runs; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c clawctl -n "__fish_clawctl_using_subcommand approvals; and not __fish_seen_subcommand_from list show allow deny help" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand approvals; and not __fish_seen_subcommand_from list show allow deny help" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand approvals; and not __fish_seen_subcommand_from list show allow deny help" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand approvals; and not __fish_seen_subcommand_from list show allow deny help" -f -a "list" -d 'List approvals: those waiting for a decision, the longest-waiting first, or (with --status) past ones, the newest first'
complete -c clawctl -n "__fish_clawctl_using_subcommand approvals; and not __fish_seen_subcommand_from list show allow deny help" -f -a "show" -d 'Show one approval: the request with its input, the diff of an edit, the questions with their options, the plan; the decision'
complete -c clawctl -n "__fish_clawctl_using_subcommand approvals; and not __fish_seen_subcommand_from list show allow deny help" -f -a "allow" -d 'Let the agent go ahead (or answer its questions)'
complete -c clawctl -n "__fish_clawctl_using_subcommand approvals; and not __fish_seen_subcommand_from list show allow deny help" -f -a "deny" -d 'Refuse the request; the agent is told (with the message, if any)'
complete -c clawctl -n "__fish_clawctl_using_subcommand approvals; and not __fish_seen_subcommand_from list show allow deny help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c clawctl -n "__fish_clawctl_using_subcommand approvals; and __fish_seen_subcommand_from list" -l status -d 'Only approvals in this state' -r -f -a "pending\t''
allowed\t''
denied\t''
expired\t''
cancelled\t''
all\t''"
complete -c clawctl -n "__fish_clawctl_using_subcommand approvals; and __fish_seen_subcommand_from list" -l run -d 'Only this run\'s approvals' -r
complete -c clawctl -n "__fish_clawctl_using_subcommand approvals; and __fish_seen_subcommand_from list" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand approvals; and __fish_seen_subcommand_from list" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand approvals; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand approvals; and __fish_seen_subcommand_from show" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand approvals; and __fish_seen_subcommand_from show" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand approvals; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand approvals; and __fish_seen_subcommand_from allow" -l message -d 'A note for the agent with the decision' -r
complete -c clawctl -n "__fish_clawctl_using_subcommand approvals; and __fish_seen_subcommand_from allow" -l answer -d 'An answer to one of the agent\'s questions, as QUESTION=ANSWER (the question\'s text or its header; repeat for each question)' -r
complete -c clawctl -n "__fish_clawctl_using_subcommand approvals; and __fish_seen_subcommand_from allow" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand approvals; and __fish_seen_subcommand_from allow" -l session -d 'Allow this tool for the rest of the run, not just this once'
complete -c clawctl -n "__fish_clawctl_using_subcommand approvals; and __fish_seen_subcommand_from allow" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand approvals; and __fish_seen_subcommand_from allow" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand approvals; and __fish_seen_subcommand_from deny" -l message -d 'Why, for the agent' -r
complete -c clawctl -n "__fish_clawctl_using_subcommand approvals; and __fish_seen_subcommand_from deny" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand approvals; and __fish_seen_subcommand_from deny" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand approvals; and __fish_seen_subcommand_from deny" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand approvals; and __fish_seen_subcommand_from help" -f -a "list" -d 'List approvals: those waiting for a decision, the longest-waiting first, or (with --status) past ones, the newest first'
complete -c clawctl -n "__fish_clawctl_using_subcommand approvals; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show one approval: the request with its input, the diff of an edit, the questions with their options, the plan; the decision'
complete -c clawctl -n "__fish_clawctl_using_subcommand approvals; and __fish_seen_subcommand_from help" -f -a "allow" -d 'Let the agent go ahead (or answer its questions)'
complete -c clawctl -n "__fish_clawctl_using_subcommand approvals; and __fish_seen_subcommand_from help" -f -a "deny" -d 'Refuse the request; the agent is told (with the message, if any)'
complete -c clawctl -n "__fish_clawctl_using_subcommand approvals; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c clawctl -n "__fish_clawctl_using_subcommand users; and not __fish_seen_subcommand_from list add del passwd role reset-totp help" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand users; and not __fish_seen_subcommand_from list add del passwd role reset-totp help" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand users; and not __fish_seen_subcommand_from list add del passwd role reset-totp help" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand users; and not __fish_seen_subcommand_from list add del passwd role reset-totp help" -f -a "list" -d 'List accounts (never passwords or TOTP secrets)'
complete -c clawctl -n "__fish_clawctl_using_subcommand users; and not __fish_seen_subcommand_from list add del passwd role reset-totp help" -f -a "add" -d 'Create an account; the password is asked for (without echo)'
complete -c clawctl -n "__fish_clawctl_using_subcommand users; and not __fish_seen_subcommand_from list add del passwd role reset-totp help" -f -a "del" -d 'Delete an account and end its sessions'
complete -c clawctl -n "__fish_clawctl_using_subcommand users; and not __fish_seen_subcommand_from list add del passwd role reset-totp help" -f -a "passwd" -d 'Set a new password and end the user\'s sessions'
complete -c clawctl -n "__fish_clawctl_using_subcommand users; and not __fish_seen_subcommand_from list add del passwd role reset-totp help" -f -a "role" -d 'Change an account\'s role'
complete -c clawctl -n "__fish_clawctl_using_subcommand users; and not __fish_seen_subcommand_from list add del passwd role reset-totp help" -f -a "reset-totp" -d 'Remove the user\'s TOTP enrolment (after a lost authenticator)'
complete -c clawctl -n "__fish_clawctl_using_subcommand users; and not __fish_seen_subcommand_from list add del passwd role reset-totp help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c clawctl -n "__fish_clawctl_using_subcommand users; and __fish_seen_subcommand_from list" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand users; and __fish_seen_subcommand_from list" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand users; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand users; and __fish_seen_subcommand_from add" -l role -d 'What the account may do: viewer reads, operator runs, admin manages users' -r -f -a "viewer\t''
operator\t''
admin\t''"
complete -c clawctl -n "__fish_clawctl_using_subcommand users; and __fish_seen_subcommand_from add" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand users; and __fish_seen_subcommand_from add" -l password-stdin -d 'Read the password from standard input (first line) instead of asking'
complete -c clawctl -n "__fish_clawctl_using_subcommand users; and __fish_seen_subcommand_from add" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand users; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand users; and __fish_seen_subcommand_from del" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand users; and __fish_seen_subcommand_from del" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand users; and __fish_seen_subcommand_from del" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand users; and __fish_seen_subcommand_from passwd" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand users; and __fish_seen_subcommand_from passwd" -l password-stdin -d 'Read the password from standard input (first line) instead of asking'
complete -c clawctl -n "__fish_clawctl_using_subcommand users; and __fish_seen_subcommand_from passwd" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand users; and __fish_seen_subcommand_from passwd" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand users; and __fish_seen_subcommand_from role" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand users; and __fish_seen_subcommand_from role" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand users; and __fish_seen_subcommand_from role" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand users; and __fish_seen_subcommand_from reset-totp" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand users; and __fish_seen_subcommand_from reset-totp" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand users; and __fish_seen_subcommand_from reset-totp" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand users; and __fish_seen_subcommand_from help" -f -a "list" -d 'List accounts (never passwords or TOTP secrets)'
complete -c clawctl -n "__fish_clawctl_using_subcommand users; and __fish_seen_subcommand_from help" -f -a "add" -d 'Create an account; the password is asked for (without echo)'
complete -c clawctl -n "__fish_clawctl_using_subcommand users; and __fish_seen_subcommand_from help" -f -a "del" -d 'Delete an account and end its sessions'
complete -c clawctl -n "__fish_clawctl_using_subcommand users; and __fish_seen_subcommand_from help" -f -a "passwd" -d 'Set a new password and end the user\'s sessions'
complete -c clawctl -n "__fish_clawctl_using_subcommand users; and __fish_seen_subcommand_from help" -f -a "role" -d 'Change an account\'s role'
complete -c clawctl -n "__fish_clawctl_using_subcommand users; and __fish_seen_subcommand_from help" -f -a "reset-totp" -d 'Remove the user\'s TOTP enrolment (after a lost authenticator)'
complete -c clawctl -n "__fish_clawctl_using_subcommand users; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c clawctl -n "__fish_clawctl_using_subcommand sessions; and not __fish_seen_subcommand_from list revoke help" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand sessions; and not __fish_seen_subcommand_from list revoke help" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand sessions; and not __fish_seen_subcommand_from list revoke help" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand sessions; and not __fish_seen_subcommand_from list revoke help" -f -a "list" -d 'List live login sessions'
complete -c clawctl -n "__fish_clawctl_using_subcommand sessions; and not __fish_seen_subcommand_from list revoke help" -f -a "revoke" -d 'End one session, all of a user\'s, or all'
complete -c clawctl -n "__fish_clawctl_using_subcommand sessions; and not __fish_seen_subcommand_from list revoke help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c clawctl -n "__fish_clawctl_using_subcommand sessions; and __fish_seen_subcommand_from list" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand sessions; and __fish_seen_subcommand_from list" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand sessions; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand sessions; and __fish_seen_subcommand_from revoke" -l user -d 'End every session of this user' -r
complete -c clawctl -n "__fish_clawctl_using_subcommand sessions; and __fish_seen_subcommand_from revoke" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand sessions; and __fish_seen_subcommand_from revoke" -l all -d 'End every session'
complete -c clawctl -n "__fish_clawctl_using_subcommand sessions; and __fish_seen_subcommand_from revoke" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand sessions; and __fish_seen_subcommand_from revoke" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand sessions; and __fish_seen_subcommand_from help" -f -a "list" -d 'List live login sessions'
complete -c clawctl -n "__fish_clawctl_using_subcommand sessions; and __fish_seen_subcommand_from help" -f -a "revoke" -d 'End one session, all of a user\'s, or all'
complete -c clawctl -n "__fish_clawctl_using_subcommand sessions; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c clawctl -n "__fish_clawctl_using_subcommand audit; and not __fish_seen_subcommand_from list verify help" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand audit; and not __fish_seen_subcommand_from list verify help" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand audit; and not __fish_seen_subcommand_from list verify help" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand audit; and not __fish_seen_subcommand_from list verify help" -f -a "list" -d 'List audit entries, newest first'
complete -c clawctl -n "__fish_clawctl_using_subcommand audit; and not __fish_seen_subcommand_from list verify help" -f -a "verify" -d 'Check the hash chain; exit 1 and name the first broken entry if any'
complete -c clawctl -n "__fish_clawctl_using_subcommand audit; and not __fish_seen_subcommand_from list verify help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c clawctl -n "__fish_clawctl_using_subcommand audit; and __fish_seen_subcommand_from list" -l user -d 'Only entries by this user (or "root" for control-socket actions)' -r
complete -c clawctl -n "__fish_clawctl_using_subcommand audit; and __fish_seen_subcommand_from list" -l action -d 'Only this action or the actions under it (e.g. "login" or "run.create")' -r
complete -c clawctl -n "__fish_clawctl_using_subcommand audit; and __fish_seen_subcommand_from list" -l since -d 'Only entries at or after this time (RFC 3339)' -r
complete -c clawctl -n "__fish_clawctl_using_subcommand audit; and __fish_seen_subcommand_from list" -l limit -d 'At most this many entries' -r
complete -c clawctl -n "__fish_clawctl_using_subcommand audit; and __fish_seen_subcommand_from list" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand audit; and __fish_seen_subcommand_from list" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand audit; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand audit; and __fish_seen_subcommand_from verify" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand audit; and __fish_seen_subcommand_from verify" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand audit; and __fish_seen_subcommand_from verify" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "list" -d 'List audit entries, newest first'
complete -c clawctl -n "__fish_clawctl_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "verify" -d 'Check the hash chain; exit 1 and name the first broken entry if any'
complete -c clawctl -n "__fish_clawctl_using_subcommand audit; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c clawctl -n "__fish_clawctl_using_subcommand backup; and not __fish_seen_subcommand_from verify help" -l output -d 'Directory for the archive (clawd writes it) [default: /var/backups/claw]' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand backup; and not __fish_seen_subcommand_from verify help" -l keep -d 'Keep this many newest archives in the directory, remove older ones' -r
complete -c clawctl -n "__fish_clawctl_using_subcommand backup; and not __fish_seen_subcommand_from verify help" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand backup; and not __fish_seen_subcommand_from verify help" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand backup; and not __fish_seen_subcommand_from verify help" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand backup; and not __fish_seen_subcommand_from verify help" -f -a "verify" -d 'Check an archive: every file against the manifest, and the database\'s integrity'
complete -c clawctl -n "__fish_clawctl_using_subcommand backup; and not __fish_seen_subcommand_from verify help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c clawctl -n "__fish_clawctl_using_subcommand backup; and __fish_seen_subcommand_from verify" -l scratch-url -d 'PostgreSQL archives: also restore the dump into a new database on this server (a role that may create databases; the password in the URL or PGPASSWORD), compare its rows with the manifest, check the audit chain, and drop it' -r
complete -c clawctl -n "__fish_clawctl_using_subcommand backup; and __fish_seen_subcommand_from verify" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand backup; and __fish_seen_subcommand_from verify" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand backup; and __fish_seen_subcommand_from verify" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand backup; and __fish_seen_subcommand_from help" -f -a "verify" -d 'Check an archive: every file against the manifest, and the database\'s integrity'
complete -c clawctl -n "__fish_clawctl_using_subcommand backup; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c clawctl -n "__fish_clawctl_using_subcommand restore" -l data-dir -d 'clawd\'s data directory' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand restore" -l config -d 'Also write the archive\'s configuration here (the old file is kept as .bak)' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand restore" -l database-url -d 'PostgreSQL archives: the database to restore into, which must be the one clawd is configured for [default: the database_url of --config, else of the archive\'s configuration]' -r
complete -c clawctl -n "__fish_clawctl_using_subcommand restore" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand restore" -l stop -d 'Stop clawd if it is serving (and start it again afterwards when systemd runs it)'
complete -c clawctl -n "__fish_clawctl_using_subcommand restore" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand restore" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and not __fish_seen_subcommand_from status list retry purge channels add-channel remove-channel help" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and not __fish_seen_subcommand_from status list retry purge channels add-channel remove-channel help" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and not __fish_seen_subcommand_from status list retry purge channels add-channel remove-channel help" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and not __fish_seen_subcommand_from status list retry purge channels add-channel remove-channel help" -f -a "status" -d 'How many notifications are pending, delivered and dead, and how many channels there are'
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and not __fish_seen_subcommand_from status list retry purge channels add-channel remove-channel help" -f -a "list" -d 'List the outbox, newest first: each notification for each channel, its attempts and its last error'
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and not __fish_seen_subcommand_from status list retry purge channels add-channel remove-channel help" -f -a "retry" -d 'Send a dead letter again (when its receiver is back)'
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and not __fish_seen_subcommand_from status list retry purge channels add-channel remove-channel help" -f -a "purge" -d 'Delete every dead letter'
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and not __fish_seen_subcommand_from status list retry purge channels add-channel remove-channel help" -f -a "channels" -d 'List every channel: the global ones and each user\'s (ntfy, webhooks, browsers)'
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and not __fish_seen_subcommand_from status list retry purge channels add-channel remove-channel help" -f -a "add-channel" -d 'Add a global channel: it hears of every run, whoever made it. A webhook\'s signing secret is printed this once'
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and not __fish_seen_subcommand_from status list retry purge channels add-channel remove-channel help" -f -a "remove-channel" -d 'Remove a channel (a global one or a user\'s)'
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and not __fish_seen_subcommand_from status list retry purge channels add-channel remove-channel help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and __fish_seen_subcommand_from status" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and __fish_seen_subcommand_from status" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and __fish_seen_subcommand_from list" -l status -d 'Only notifications in this state [default: all]' -r -f -a "pending\t''
delivered\t''
dead\t''"
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and __fish_seen_subcommand_from list" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and __fish_seen_subcommand_from list" -l dead -d 'Only dead letters (given up on), as `--status dead`'
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and __fish_seen_subcommand_from list" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and __fish_seen_subcommand_from retry" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and __fish_seen_subcommand_from retry" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and __fish_seen_subcommand_from retry" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and __fish_seen_subcommand_from purge" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and __fish_seen_subcommand_from purge" -l dead -d 'Required: only dead letters are purged, never pending or delivered notifications'
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and __fish_seen_subcommand_from purge" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and __fish_seen_subcommand_from purge" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and __fish_seen_subcommand_from channels" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and __fish_seen_subcommand_from channels" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and __fish_seen_subcommand_from channels" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and __fish_seen_subcommand_from add-channel" -l kind -d 'ntfy posts to a topic URL; webhook posts signed JSON (Standard Webhooks)' -r -f -a "ntfy\t''
webhook\t''"
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and __fish_seen_subcommand_from add-channel" -l name -d 'What the channel is called in lists' -r
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and __fish_seen_subcommand_from add-channel" -l target -d 'The ntfy topic URL (https://ntfy.sh/TOPIC) or the webhook URL' -r
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and __fish_seen_subcommand_from add-channel" -l token -d 'An ntfy access token (ntfy only)' -r
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and __fish_seen_subcommand_from add-channel" -l events -d 'The kinds of notification to send, comma-separated [default: approval,question,failed]' -r -f -a "approval\t''
question\t''
plan\t''
finished\t''
failed\t''
stopped\t''
runner_lost\t''"
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and __fish_seen_subcommand_from add-channel" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and __fish_seen_subcommand_from add-channel" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and __fish_seen_subcommand_from add-channel" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and __fish_seen_subcommand_from remove-channel" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and __fish_seen_subcommand_from remove-channel" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and __fish_seen_subcommand_from remove-channel" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and __fish_seen_subcommand_from help" -f -a "status" -d 'How many notifications are pending, delivered and dead, and how many channels there are'
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the outbox, newest first: each notification for each channel, its attempts and its last error'
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and __fish_seen_subcommand_from help" -f -a "retry" -d 'Send a dead letter again (when its receiver is back)'
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and __fish_seen_subcommand_from help" -f -a "purge" -d 'Delete every dead letter'
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and __fish_seen_subcommand_from help" -f -a "channels" -d 'List every channel: the global ones and each user\'s (ntfy, webhooks, browsers)'
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and __fish_seen_subcommand_from help" -f -a "add-channel" -d 'Add a global channel: it hears of every run, whoever made it. A webhook\'s signing secret is printed this once'
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and __fish_seen_subcommand_from help" -f -a "remove-channel" -d 'Remove a channel (a global one or a user\'s)'
complete -c clawctl -n "__fish_clawctl_using_subcommand notify; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c clawctl -n "__fish_clawctl_using_subcommand hosts; and not __fish_seen_subcommand_from list add revoke remove help" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand hosts; and not __fish_seen_subcommand_from list add revoke remove help" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand hosts; and not __fish_seen_subcommand_from list add revoke remove help" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand hosts; and not __fish_seen_subcommand_from list add revoke remove help" -f -a "list" -d 'List the hosts: state, when last seen, and what each said when it last connected (claw-runner version, agents, workspaces, sessions running now of its limit)'
complete -c clawctl -n "__fish_clawctl_using_subcommand hosts; and not __fish_seen_subcommand_from list add revoke remove help" -f -a "add" -d 'Add a host and print its enrolment token with the claw-runner enroll command to run on it. The token is shown only now and works once, for a limited time; running this again for a host not enrolled yet gives a fresh token (the old one stops working)'
complete -c clawctl -n "__fish_clawctl_using_subcommand hosts; and not __fish_seen_subcommand_from list add revoke remove help" -f -a "revoke" -d 'Cut a host off at once and for good: its connection closes and its key never works again (it stays listed, revoked, until removed)'
complete -c clawctl -n "__fish_clawctl_using_subcommand hosts; and not __fish_seen_subcommand_from list add revoke remove help" -f -a "remove" -d 'Remove a host from the list without asking; an enrolled one\'s key stops working, a pending one\'s token too'
complete -c clawctl -n "__fish_clawctl_using_subcommand hosts; and not __fish_seen_subcommand_from list add revoke remove help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c clawctl -n "__fish_clawctl_using_subcommand hosts; and __fish_seen_subcommand_from list" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand hosts; and __fish_seen_subcommand_from list" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand hosts; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand hosts; and __fish_seen_subcommand_from add" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand hosts; and __fish_seen_subcommand_from add" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand hosts; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand hosts; and __fish_seen_subcommand_from revoke" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand hosts; and __fish_seen_subcommand_from revoke" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand hosts; and __fish_seen_subcommand_from revoke" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand hosts; and __fish_seen_subcommand_from remove" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand hosts; and __fish_seen_subcommand_from remove" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand hosts; and __fish_seen_subcommand_from remove" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand hosts; and __fish_seen_subcommand_from help" -f -a "list" -d 'List the hosts: state, when last seen, and what each said when it last connected (claw-runner version, agents, workspaces, sessions running now of its limit)'
complete -c clawctl -n "__fish_clawctl_using_subcommand hosts; and __fish_seen_subcommand_from help" -f -a "add" -d 'Add a host and print its enrolment token with the claw-runner enroll command to run on it. The token is shown only now and works once, for a limited time; running this again for a host not enrolled yet gives a fresh token (the old one stops working)'
complete -c clawctl -n "__fish_clawctl_using_subcommand hosts; and __fish_seen_subcommand_from help" -f -a "revoke" -d 'Cut a host off at once and for good: its connection closes and its key never works again (it stays listed, revoked, until removed)'
complete -c clawctl -n "__fish_clawctl_using_subcommand hosts; and __fish_seen_subcommand_from help" -f -a "remove" -d 'Remove a host from the list without asking; an enrolled one\'s key stops working, a pending one\'s token too'
complete -c clawctl -n "__fish_clawctl_using_subcommand hosts; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c clawctl -n "__fish_clawctl_using_subcommand secrets; and not __fish_seen_subcommand_from rotate help" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand secrets; and not __fish_seen_subcommand_from rotate help" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand secrets; and not __fish_seen_subcommand_from rotate help" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand secrets; and not __fish_seen_subcommand_from rotate help" -f -a "rotate" -d 'Generate a new secret; `hmac` prints it once for the runners'
complete -c clawctl -n "__fish_clawctl_using_subcommand secrets; and not __fish_seen_subcommand_from rotate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c clawctl -n "__fish_clawctl_using_subcommand secrets; and __fish_seen_subcommand_from rotate" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand secrets; and __fish_seen_subcommand_from rotate" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand secrets; and __fish_seen_subcommand_from rotate" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand secrets; and __fish_seen_subcommand_from rotate" -f -a "hmac" -d 'The runners\' HMAC secret; the old one keeps working for the grace period'
complete -c clawctl -n "__fish_clawctl_using_subcommand secrets; and __fish_seen_subcommand_from rotate" -f -a "auth" -d 'The session secret: every login session ends'
complete -c clawctl -n "__fish_clawctl_using_subcommand secrets; and __fish_seen_subcommand_from rotate" -f -a "vapid" -d 'The Web Push (VAPID) key: every browser\'s push subscription ends; users enable notifications again in Account on each device'
complete -c clawctl -n "__fish_clawctl_using_subcommand secrets; and __fish_seen_subcommand_from rotate" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c clawctl -n "__fish_clawctl_using_subcommand secrets; and __fish_seen_subcommand_from help" -f -a "rotate" -d 'Generate a new secret; `hmac` prints it once for the runners'
complete -c clawctl -n "__fish_clawctl_using_subcommand secrets; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c clawctl -n "__fish_clawctl_using_subcommand certs; and not __fish_seen_subcommand_from show install self-signed help" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand certs; and not __fish_seen_subcommand_from show install self-signed help" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand certs; and not __fish_seen_subcommand_from show install self-signed help" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand certs; and not __fish_seen_subcommand_from show install self-signed help" -f -a "show" -d 'Subject, names, issuer, validity, SHA-256 fingerprint and days left'
complete -c clawctl -n "__fish_clawctl_using_subcommand certs; and not __fish_seen_subcommand_from show install self-signed help" -f -a "install" -d 'Install a certificate chain and its key; new connections use it at once'
complete -c clawctl -n "__fish_clawctl_using_subcommand certs; and not __fish_seen_subcommand_from show install self-signed help" -f -a "self-signed" -d 'Generate and install a self-signed certificate valid for 365 days'
complete -c clawctl -n "__fish_clawctl_using_subcommand certs; and not __fish_seen_subcommand_from show install self-signed help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c clawctl -n "__fish_clawctl_using_subcommand certs; and __fish_seen_subcommand_from show" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand certs; and __fish_seen_subcommand_from show" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand certs; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand certs; and __fish_seen_subcommand_from install" -l cert -d 'PEM certificate chain, server certificate first (e.g. certbot\'s fullchain.pem)' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand certs; and __fish_seen_subcommand_from install" -l key -d 'PEM private key of that certificate (e.g. certbot\'s privkey.pem)' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand certs; and __fish_seen_subcommand_from install" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand certs; and __fish_seen_subcommand_from install" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand certs; and __fish_seen_subcommand_from install" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand certs; and __fish_seen_subcommand_from self-signed" -l name -d 'Host names (repeatable) [default: localhost and this host\'s name]' -r
complete -c clawctl -n "__fish_clawctl_using_subcommand certs; and __fish_seen_subcommand_from self-signed" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand certs; and __fish_seen_subcommand_from self-signed" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand certs; and __fish_seen_subcommand_from self-signed" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand certs; and __fish_seen_subcommand_from help" -f -a "show" -d 'Subject, names, issuer, validity, SHA-256 fingerprint and days left'
complete -c clawctl -n "__fish_clawctl_using_subcommand certs; and __fish_seen_subcommand_from help" -f -a "install" -d 'Install a certificate chain and its key; new connections use it at once'
complete -c clawctl -n "__fish_clawctl_using_subcommand certs; and __fish_seen_subcommand_from help" -f -a "self-signed" -d 'Generate and install a self-signed certificate valid for 365 days'
complete -c clawctl -n "__fish_clawctl_using_subcommand certs; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c clawctl -n "__fish_clawctl_using_subcommand reconcile" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand reconcile" -l fix -d 'Repair what can be repaired safely (statuses, artifact rows and files)'
complete -c clawctl -n "__fish_clawctl_using_subcommand reconcile" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand reconcile" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand db; and not __fish_seen_subcommand_from status check copy-to help" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand db; and not __fish_seen_subcommand_from status check copy-to help" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand db; and not __fish_seen_subcommand_from status check copy-to help" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand db; and not __fish_seen_subcommand_from status check copy-to help" -f -a "status" -d 'Schema version, applied migrations, size, WAL size, page counts, rows per table'
complete -c clawctl -n "__fish_clawctl_using_subcommand db; and not __fish_seen_subcommand_from status check copy-to help" -f -a "check" -d 'Run SQLite\'s integrity and foreign-key checks; exit 1 on any problem'
complete -c clawctl -n "__fish_clawctl_using_subcommand db; and not __fish_seen_subcommand_from status check copy-to help" -f -a "copy-to" -d 'Copy this SQLite installation into an empty PostgreSQL database, check the copy there and print the configuration to switch to'
complete -c clawctl -n "__fish_clawctl_using_subcommand db; and not __fish_seen_subcommand_from status check copy-to help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c clawctl -n "__fish_clawctl_using_subcommand db; and __fish_seen_subcommand_from status" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand db; and __fish_seen_subcommand_from status" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand db; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand db; and __fish_seen_subcommand_from check" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand db; and __fish_seen_subcommand_from check" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand db; and __fish_seen_subcommand_from check" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand db; and __fish_seen_subcommand_from copy-to" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand db; and __fish_seen_subcommand_from copy-to" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand db; and __fish_seen_subcommand_from copy-to" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c clawctl -n "__fish_clawctl_using_subcommand db; and __fish_seen_subcommand_from help" -f -a "status" -d 'Schema version, applied migrations, size, WAL size, page counts, rows per table'
complete -c clawctl -n "__fish_clawctl_using_subcommand db; and __fish_seen_subcommand_from help" -f -a "check" -d 'Run SQLite\'s integrity and foreign-key checks; exit 1 on any problem'
complete -c clawctl -n "__fish_clawctl_using_subcommand db; and __fish_seen_subcommand_from help" -f -a "copy-to" -d 'Copy this SQLite installation into an empty PostgreSQL database, check the copy there and print the configuration to switch to'
complete -c clawctl -n "__fish_clawctl_using_subcommand db; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c clawctl -n "__fish_clawctl_using_subcommand prune" -l older-than -d 'Remove runs that finished more than DAYS days ago [default: run_retention_days from clawd.toml, 30]' -r
complete -c clawctl -n "__fish_clawctl_using_subcommand prune" -l socket -d 'Control socket of clawd' -r -F
complete -c clawctl -n "__fish_clawctl_using_subcommand prune" -l dry-run -d 'Report what would go, change nothing'
complete -c clawctl -n "__fish_clawctl_using_subcommand prune" -l json -d 'Print JSON for scripts instead of text for people'
complete -c clawctl -n "__fish_clawctl_using_subcommand prune" -s h -l help -d 'Print help'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and not __fish_seen_subcommand_from status health runs approvals users sessions audit backup restore notify hosts secrets certs reconcile db prune help" -f -a "status" -d 'Version, uptime, listeners, certificate, database and run counts'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and not __fish_seen_subcommand_from status health runs approvals users sessions audit backup restore notify hosts secrets certs reconcile db prune help" -f -a "health" -d 'Exit 0 only when clawd and its database answer (for monitoring)'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and not __fish_seen_subcommand_from status health runs approvals users sessions audit backup restore notify hosts secrets certs reconcile db prune help" -f -a "runs" -d 'List, inspect, follow, create, stop and delete runs'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and not __fish_seen_subcommand_from status health runs approvals users sessions audit backup restore notify hosts secrets certs reconcile db prune help" -f -a "approvals" -d 'The agents\' requests waiting for a person: list, show, allow, deny'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and not __fish_seen_subcommand_from status health runs approvals users sessions audit backup restore notify hosts secrets certs reconcile db prune help" -f -a "users" -d 'Manage local user accounts'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and not __fish_seen_subcommand_from status health runs approvals users sessions audit backup restore notify hosts secrets certs reconcile db prune help" -f -a "sessions" -d 'List and end login sessions'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and not __fish_seen_subcommand_from status health runs approvals users sessions audit backup restore notify hosts secrets certs reconcile db prune help" -f -a "audit" -d 'Read and verify the tamper-evident audit log'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and not __fish_seen_subcommand_from status health runs approvals users sessions audit backup restore notify hosts secrets certs reconcile db prune help" -f -a "backup" -d 'Take an online backup archive (or check one with `backup verify FILE`)'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and not __fish_seen_subcommand_from status health runs approvals users sessions audit backup restore notify hosts secrets certs reconcile db prune help" -f -a "restore" -d 'Put a backup back: database, artifacts, certificates, secrets'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and not __fish_seen_subcommand_from status health runs approvals users sessions audit backup restore notify hosts secrets certs reconcile db prune help" -f -a "notify" -d 'Notifications: the outbox (pending, delivered, dead letters) and the global channels (ntfy topics, webhooks)'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and not __fish_seen_subcommand_from status health runs approvals users sessions audit backup restore notify hosts secrets certs reconcile db prune help" -f -a "hosts" -d 'Coding hosts that run claw-runner serve: list them, add one (its one-time enrolment token), revoke or remove one'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and not __fish_seen_subcommand_from status health runs approvals users sessions audit backup restore notify hosts secrets certs reconcile db prune help" -f -a "secrets" -d 'Rotate the runners\' HMAC secret, the session secret or the Web Push key'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and not __fish_seen_subcommand_from status health runs approvals users sessions audit backup restore notify hosts secrets certs reconcile db prune help" -f -a "certs" -d 'Show, install or generate the HTTPS certificate'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and not __fish_seen_subcommand_from status health runs approvals users sessions audit backup restore notify hosts secrets certs reconcile db prune help" -f -a "reconcile" -d 'Find drift between the store and reality; --fix repairs what is safe'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and not __fish_seen_subcommand_from status health runs approvals users sessions audit backup restore notify hosts secrets certs reconcile db prune help" -f -a "db" -d 'Database schema, size and checks'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and not __fish_seen_subcommand_from status health runs approvals users sessions audit backup restore notify hosts secrets certs reconcile db prune help" -f -a "prune" -d 'Remove finished runs past the retention with their events, commands and artifacts, artifact folders of no run, expired sessions and nonces'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and not __fish_seen_subcommand_from status health runs approvals users sessions audit backup restore notify hosts secrets certs reconcile db prune help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from runs" -f -a "list" -d 'List runs, newest first'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from runs" -f -a "show" -d 'Show one run with its commands and artifacts'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from runs" -f -a "tail" -d 'Print a run\'s output; stdout and stderr go to the same streams here'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from runs" -f -a "follow" -d 'Follow an agent run as a conversation: prompts, messages, one line per tool call, turn totals (--json prints the events)'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from runs" -f -a "create" -d 'Create a run and print its id, its capability token (shown only once) and the claw-runner line that starts it'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from runs" -f -a "start" -d 'Start an agent session on an enrolled coding host (see clawctl hosts list) in one of its workspaces, and print the run\'s id. The host checks the workspace and its session limit itself'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from runs" -f -a "prompt" -d 'Send the next instruction to a run\'s agent (a finished session on a host is resumed there)'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from runs" -f -a "interrupt" -d 'End the current turn of a run\'s agent'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from runs" -f -a "stop" -d 'Ask the run\'s runner to stop the agent (SIGINT, then SIGKILL after 10 s)'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from runs" -f -a "delete" -d 'Delete a run with its events, commands and artifacts'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from approvals" -f -a "list" -d 'List approvals: those waiting for a decision, the longest-waiting first, or (with --status) past ones, the newest first'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from approvals" -f -a "show" -d 'Show one approval: the request with its input, the diff of an edit, the questions with their options, the plan; the decision'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from approvals" -f -a "allow" -d 'Let the agent go ahead (or answer its questions)'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from approvals" -f -a "deny" -d 'Refuse the request; the agent is told (with the message, if any)'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from users" -f -a "list" -d 'List accounts (never passwords or TOTP secrets)'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from users" -f -a "add" -d 'Create an account; the password is asked for (without echo)'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from users" -f -a "del" -d 'Delete an account and end its sessions'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from users" -f -a "passwd" -d 'Set a new password and end the user\'s sessions'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from users" -f -a "role" -d 'Change an account\'s role'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from users" -f -a "reset-totp" -d 'Remove the user\'s TOTP enrolment (after a lost authenticator)'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from sessions" -f -a "list" -d 'List live login sessions'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from sessions" -f -a "revoke" -d 'End one session, all of a user\'s, or all'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from audit" -f -a "list" -d 'List audit entries, newest first'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from audit" -f -a "verify" -d 'Check the hash chain; exit 1 and name the first broken entry if any'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from backup" -f -a "verify" -d 'Check an archive: every file against the manifest, and the database\'s integrity'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from notify" -f -a "status" -d 'How many notifications are pending, delivered and dead, and how many channels there are'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from notify" -f -a "list" -d 'List the outbox, newest first: each notification for each channel, its attempts and its last error'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from notify" -f -a "retry" -d 'Send a dead letter again (when its receiver is back)'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from notify" -f -a "purge" -d 'Delete every dead letter'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from notify" -f -a "channels" -d 'List every channel: the global ones and each user\'s (ntfy, webhooks, browsers)'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from notify" -f -a "add-channel" -d 'Add a global channel: it hears of every run, whoever made it. A webhook\'s signing secret is printed this once'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from notify" -f -a "remove-channel" -d 'Remove a channel (a global one or a user\'s)'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from hosts" -f -a "list" -d 'List the hosts: state, when last seen, and what each said when it last connected (claw-runner version, agents, workspaces, sessions running now of its limit)'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from hosts" -f -a "add" -d 'Add a host and print its enrolment token with the claw-runner enroll command to run on it. The token is shown only now and works once, for a limited time; running this again for a host not enrolled yet gives a fresh token (the old one stops working)'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from hosts" -f -a "revoke" -d 'Cut a host off at once and for good: its connection closes and its key never works again (it stays listed, revoked, until removed)'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from hosts" -f -a "remove" -d 'Remove a host from the list without asking; an enrolled one\'s key stops working, a pending one\'s token too'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from secrets" -f -a "rotate" -d 'Generate a new secret; `hmac` prints it once for the runners'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from certs" -f -a "show" -d 'Subject, names, issuer, validity, SHA-256 fingerprint and days left'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from certs" -f -a "install" -d 'Install a certificate chain and its key; new connections use it at once'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from certs" -f -a "self-signed" -d 'Generate and install a self-signed certificate valid for 365 days'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from db" -f -a "status" -d 'Schema version, applied migrations, size, WAL size, page counts, rows per table'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from db" -f -a "check" -d 'Run SQLite\'s integrity and foreign-key checks; exit 1 on any problem'
complete -c clawctl -n "__fish_clawctl_using_subcommand help; and __fish_seen_subcommand_from db" -f -a "copy-to" -d 'Copy this SQLite installation into an empty PostgreSQL database, check the copy there and print the configuration to switch to'
