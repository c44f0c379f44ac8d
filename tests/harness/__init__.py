"""Test harnesses: real Kafka + Kafka Connect (connect_kit) and a real kube-apiserver + etcd (apiserver_kit)."""
