"""fedpeft on Flower: ServerApp and ClientApp around fedpeft's own simulator and client."""
