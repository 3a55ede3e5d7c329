"""VM hosts: dummy (dev), libvirt and Proxmox."""
