#!/usr/bin/env bash
# Refresh the web assets the hub serves itself (no CDN): Swagger UI for /docs and uPlot for the
# dashboard's charts, taken from their npm packages with their licences. Run from the repo root:
#   bash tools/vendor_web_assets.sh
set -euo pipefail
SWAGGER_UI=swagger-ui-dist@5.35.0
UPLOT=uplot@1.6.32
dest=cloud_hub/static/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$SWAGGER_UI" "$UPLOT" >/dev/null)
for tarball in "$work"/*.tgz; do
  mkdir -p "${tarball%.tgz}" && tar xzf "$tarball" -C "${tarball%.tgz}"
done
mkdir -p "$dest/swagger-ui" "$dest/uplot"
src="$work/swagger-ui-dist-5.35.0/package"
cp "$src/LICENSE" "$src/NOTICE" "$src/favicon-32x32.png" "$dest/swagger-ui/"
cp "$src/swagger-ui-bundle.js.LICENSE.txt" "$dest/swagger-ui/"
# the source map is not shipped, so its comment would only make browsers ask for a missing file
sed '/^\/\/# sourceMappingURL=/d' "$src/swagger-ui-bundle.js" > "$dest/swagger-ui/swagger-ui-bundle.js"
sed '/^\/\*# sourceMappingURL=/d' "$src/swagger-ui.css" > "$dest/swagger-ui/swagger-ui.css"
src="$work/uplot-1.6.32/package"
cp "$src/LICENSE" "$src/dist/uPlot.iife.min.js" "$src/dist/uPlot.min.css" "$dest/uplot/"
echo "vendored $SWAGGER_UI and $UPLOT into $dest"
