using System.Threading.Channels;
using Microsoft.ML.Cora;
using Microsoft.ML.Cora.Data;

namespace Cora.Cli;

/// <summary>Limits of the request merger (defaults in <see cref="CoraDefaults"/>-style constants here, one place).</summary>
public sealed record BatcherOptions
{
    public const int DefaultMaxBatch = 64, DefaultMaxWaitMs = 5, DefaultQueue = 1024, DefaultDeadlineMs = 2000;
    /// <summary>Most rows per model call (requests are merged up to this).</summary>
    public int MaxBatch { get; init; } = DefaultMaxBatch;
    /// <summary>How long the first waiting request may wait for others to join its batch.</summary>
    public TimeSpan MaxWait { get; init; } = TimeSpan.FromMilliseconds(DefaultMaxWaitMs);
    /// <summary>Requests waiting at most (more get 503).</summary>
    public int Queue { get; init; } = DefaultQueue;
    /// <summary>Per-request deadline; past it the request is answered with the CF score (the documented fallback).</summary>
    public TimeSpan Deadline { get; init; } = TimeSpan.FromMilliseconds(DefaultDeadlineMs);
}

/// <summary>
/// Merges concurrent scoring requests into batches: a bounded queue, one scoring loop, at most <see cref="BatcherOptions.MaxBatch"/>
/// rows per model call, waiting at most <see cref="BatcherOptions.MaxWait"/> for a batch to fill. Stopping drains what is queued.
/// </summary>
internal sealed class ScoreBatcher : IAsyncDisposable
{
    private sealed record Work(IReadOnlyList<Interaction> Rows, TaskCompletionSource<float[]> Done);

    private readonly CoraModel _model;
    private readonly int _scoringBatch;
    private readonly BatcherOptions _o;
    private readonly Channel<Work> _queue;
    private readonly Task _loop;
    /// <summary>Model calls made, rows scored, requests taken into the queue.</summary>
    public long Batches, Rows, Received;

    public ScoreBatcher(CoraModel model, int scoringBatch, BatcherOptions options)
    {
        _model = model; _scoringBatch = scoringBatch; _o = options;
        _queue = Channel.CreateBounded<Work>(new BoundedChannelOptions(options.Queue) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
        _loop = Task.Run(LoopAsync);
    }

    /// <summary>Scores rows through the shared batches; false when the queue is full or the service is stopping.</summary>
    public bool TryEnqueue(IReadOnlyList<Interaction> rows, out Task<float[]> scores)
    {
        var tcs = new TaskCompletionSource<float[]>(TaskCreationOptions.RunContinuationsAsynchronously);
        scores = tcs.Task;
        if (!_queue.Writer.TryWrite(new Work(rows, tcs))) return false;
        Interlocked.Increment(ref Received);
        return true;
    }

    private async Task LoopAsync()
    {
        var reader = _queue.Reader;
        var batch = new List<Work>();
        while (await reader.WaitToReadAsync())
        {
            batch.Clear();
            int rows = 0;
            var until = DateTime.UtcNow + _o.MaxWait;
            while (rows < _o.MaxBatch)
            {
                if (reader.TryRead(out var w)) { batch.Add(w); rows += w.Rows.Count; continue; }
                var left = until - DateTime.UtcNow;
                if (left <= TimeSpan.Zero) break;
                using var cts = new CancellationTokenSource(left);
                try { if (!await reader.WaitToReadAsync(cts.Token)) break; }
                catch (OperationCanceledException) { break; }
            }
            if (batch.Count == 0) continue;
            try
            {
                var all = batch.SelectMany(w => w.Rows).ToList();
                var scores = _model.Score(all, _scoringBatch);
                Interlocked.Increment(ref Batches); Interlocked.Add(ref Rows, all.Count);
                int at = 0;
                foreach (var w in batch) { w.Done.TrySetResult(scores[at..(at + w.Rows.Count)]); at += w.Rows.Count; }
            }
            catch (Exception e) { foreach (var w in batch) w.Done.TrySetException(e); }
        }
    }

    /// <summary>Stops taking requests and finishes every queued one (graceful shutdown).</summary>
    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _loop;
    }
}
