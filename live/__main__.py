from live.cli import command

command()
