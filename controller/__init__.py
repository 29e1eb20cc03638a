"""qoectl: policy-as-code QoS/QoE controller.

Data flows one way: load -> validate -> compile -> render (-> apply -> measure -> evaluate -> adjust).
"""

__version__ = "0.1.0"
