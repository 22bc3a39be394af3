# One image for every coedit node. Build: docker build -t coedit .
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY server server
COPY channels channels
COPY persistence persistence
COPY web web
RUN pip install --no-cache-dir .
ENV COEDIT_DATABASE_URL=sqlite+aiosqlite:////data/coedit.db
VOLUME /data
EXPOSE 8000
CMD ["coedit", "serve", "--host", "0.0.0.0", "--port", "8000"]
