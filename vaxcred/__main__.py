from vaxcred.cli import run

run()
