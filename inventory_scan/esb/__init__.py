"""ESB and WSDL discovery: one plug-in per product (Mule, Camel, Synapse/WSO2, BizTalk, Spring
Integration, WSDL), each registered with `@plugin(name, recognises)`; files are recognised by their
root element and namespaces, never by their names."""

from inventory_scan.esb.scan import EsbScan, EsbSource

__all__ = ["EsbScan", "EsbSource"]
