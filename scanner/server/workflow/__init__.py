"""What people decide about the fleet: waivers, retiring hosts. Uses access and store."""
