# cora: the CLI (train, score, serve, ...) with the CPU libtorch, as a non-root image.
#   docker build -t cora:1.0 .            (or: podman build / buildah bud)
#   docker run --rm -p 8080:8080 -v /models:/models:ro -e CORA_API_KEY=... cora:1.0 serve --model /models/model.zip
# GPU: build with --build-arg CORA_LIBTORCH_PACKAGE=none on a CUDA base with a libtorch of your own and set CORA_LIBTORCH
# (deploy/README.md, "GPU image").

ARG DOTNET_VERSION=10.0

FROM mcr.microsoft.com/dotnet/sdk:${DOTNET_VERSION} AS build
ARG CORA_LIBTORCH_PACKAGE=libtorch-cpu-linux-x64
WORKDIR /src
COPY . .
# The same publish command the layout test runs (tests/Cora.Tests/Deploy/ImageLayoutTests.cs).
RUN dotnet publish src/Cora.Cli -c Release -o /app -p:CoraLibTorchPackage=${CORA_LIBTORCH_PACKAGE}

FROM mcr.microsoft.com/dotnet/aspnet:${DOTNET_VERSION} AS runtime
# libgomp: libtorch's OpenMP runtime.
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app /app
# Non-root (the .NET images' "app" user, uid 1654); temporaries go to a writable volume so the root file system can be read-only.
ENV CORA_TMPDIR=/tmp/cora \
    CORA_CACHE_DIR=/tmp/cora-cache \
    ASPNETCORE_URLS=http://+:8080 \
    DOTNET_gcServer=0
USER 1654
EXPOSE 8080
ENTRYPOINT ["dotnet", "/app/cora.dll"]
CMD ["--help"]
