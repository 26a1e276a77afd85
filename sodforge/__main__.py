from sodforge.cli import app

app()
