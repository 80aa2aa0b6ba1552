"""Field tools for technicians: find and read Modbus devices, and check a gateway's set-up."""
