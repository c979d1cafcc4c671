"""What the user takes away: the front as a table and pictures (report), and the chosen config as
a deployable file with its manifest, verified on demand (export)."""
