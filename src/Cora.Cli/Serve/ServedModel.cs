using System.Reflection;
using Microsoft.ML.Cora.Estimators;

namespace Cora.Cli;

/// <summary>
/// The model being served and its request merger, swappable as one unit: a request takes a lease on the current snapshot and
/// keeps it to the end, a reload builds and warms the next snapshot first, swaps it in atomically, then lets the old one finish
/// its queued work and disposes it when its last lease ends.
/// </summary>
internal sealed class ServedModel : IAsyncDisposable
{
    /// <summary>Cora's version, as every response header and /readyz report it.</summary>
    public static readonly string Version = typeof(CoraTransformer).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0]
        ?? typeof(CoraTransformer).Assembly.GetName().Version?.ToString() ?? "?";

    /// <summary>One loaded model: the transformer, its batcher, its id (SHA-256 prefix of the model file, or "in-memory").</summary>
    public sealed class Snapshot(CoraTransformer transformer, ScoreBatcher batcher, string id, bool ownsModel)
    {
        public CoraTransformer Transformer { get; } = transformer;
        public ScoreBatcher Batcher { get; } = batcher;
        public string Id { get; } = id;
        private int _leases = 1;   // the holder's own
        private int _retired;

        public Snapshot? TryAcquire()
        {
            while (true)
            {
                int n = Volatile.Read(ref _leases);
                if (n == 0) return null;
                if (Interlocked.CompareExchange(ref _leases, n + 1, n) == n) return this;
            }
        }

        public void Release()
        {
            if (Interlocked.Decrement(ref _leases) == 0) _ = DisposeAsync();
        }

        /// <summary>Drops the holder's lease: the snapshot is disposed once the last request using it ends.</summary>
        public void Retire() { if (Interlocked.Exchange(ref _retired, 1) == 0) Release(); }

        private async Task DisposeAsync()
        {
            await Batcher.DisposeAsync();            // finishes what is queued
            if (ownsModel) Transformer.Dispose();
        }
    }

    /// <summary>A request's hold on a snapshot (released when disposed).</summary>
    public readonly struct Lease(Snapshot snapshot) : IDisposable
    {
        public Snapshot Snapshot { get; } = snapshot;
        public void Dispose() => Snapshot.Release();
    }

    private Snapshot _current;
    private readonly BatcherOptions _options;
    private readonly SemaphoreSlim _reloading = new(1, 1);

    public ServedModel(CoraTransformer model, BatcherOptions options, string id, bool ownsModel)
    {
        _options = options;
        _current = new Snapshot(model, new ScoreBatcher(model.Model, model.ScoringBatchSize, options), id, ownsModel);
    }

    public Snapshot Current => Volatile.Read(ref _current);

    private Action<int>? _onBatch;
    /// <summary>Called with the rows of each finished model call, by the current batcher and by every one a reload makes.</summary>
    public Action<int>? OnBatch
    {
        get => _onBatch;
        set { _onBatch = value; Current.Batcher.OnBatch = value; }
    }

    /// <summary>A lease on the current snapshot (retrying if it is being swapped out at this instant).</summary>
    public Lease Acquire()
    {
        while (true)
            if (Volatile.Read(ref _current).TryAcquire() is { } s) return new Lease(s);
    }

    /// <summary>Loads the next model with <paramref name="load"/>, warms it on <paramref name="warm"/>, swaps it in; the old model serves
    /// until then and finishes its queued work after. On failure the old model stays and the error is returned.</summary>
    public async Task<Exception?> ReloadAsync(Func<(CoraTransformer Model, string Id)> load, Action<CoraTransformer>? warm = null)
    {
        await _reloading.WaitAsync();
        try
        {
            CoraTransformer next;
            string id;
            try
            {
                (next, id) = await Task.Run(load);
                try { warm?.Invoke(next); }
                catch { next.Dispose(); throw; }
            }
            catch (Exception e) { return e; }
            var fresh = new Snapshot(next, new ScoreBatcher(next.Model, next.ScoringBatchSize, _options) { OnBatch = _onBatch }, id, ownsModel: true);
            var old = Interlocked.Exchange(ref _current, fresh);
            old.Retire();
            return null;
        }
        finally { _reloading.Release(); }
    }

    public async ValueTask DisposeAsync()
    {
        var s = Volatile.Read(ref _current);
        s.Retire();
        await s.Batcher.DisposeAsync();
    }
}
