# Build and deploy entry points; see images/README.md and manifests/README.md.

# Step images, built offline from a host-side wheelhouse. Pass options through ARGS:
#   make images ARGS=--local-base                      # CPU image, no registry needed (CI here)
#   make images ARGS="--variant all --prefix registry.example.com/ml --push"
.PHONY: images
images:
	images/build.sh $(ARGS)
