from vigie.cli import app

app()
