"""Hosts: other machines a task runs on over the user's own SSH, each with its own tmux server and runner.

``ssh`` is one host's multiplexed connection and the commands run over it; ``remote`` what is done
there (the runner's copy, a task's window, cancel, peek, attach); ``registry`` the hosts of
bots.yaml and which one a task goes to; ``follow`` brings a remote task's events back to the engine.
"""
