# syntax=docker/dockerfile:1
# Multi-stage build: a static binary on a minimal, non-root image.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/isp-checker ./cmd/isp-checker \
 && apt-get update && apt-get install -y --no-install-recommends libcap2-bin \
 # File capability so a non-root user can open raw ICMP sockets (traceroute,
 # path MTU, privileged ping) when the container is given CAP_NET_RAW.
 && setcap cap_net_raw+ep /out/isp-checker

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/isp-checker /bin/isp-checker
USER 65532:65532
EXPOSE 9799
# ICMP: Docker opens net.ipv4.ping_group_range to all groups in containers, so
# unprivileged ping works as is. Raw sockets (traceroute, mtu) need
#   docker run --cap-add NET_RAW ...
# and the file capability set above; without it those probes fail with a
# message that says so.
ENTRYPOINT ["/bin/isp-checker"]
CMD ["--web.listen-address=:9799"]
