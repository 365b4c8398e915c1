"""Jobs: the generation request on the wire, job rows and their states, dispatch over Ray, recovery."""
