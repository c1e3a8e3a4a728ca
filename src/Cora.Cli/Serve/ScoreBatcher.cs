using System.Threading.Channels;
using Microsoft.ML.Cora;
using Microsoft.ML.Cora.Data;

namespace Cora.Cli;

/// <summary>
/// Merges concurrent scoring requests into batches: a bounded queue, one scoring loop, at most <see cref="BatcherOptions.MaxBatch"/>
/// rows per model call, waiting at most <see cref="BatcherOptions.MaxWait"/> for a batch to fill. A request whose token is cancelled
/// (its deadline passed, its client left) is dropped before it is scored, and a model call stops between chunks once every request
/// in it is cancelled. When a merged call fails, each request is scored alone, so only the one that fails is answered with the error.
/// Stopping drains what is queued.
/// </summary>
internal sealed class ScoreBatcher : IAsyncDisposable
{
    private sealed record Work(IReadOnlyList<Interaction> Rows, TaskCompletionSource<float[]> Done, CancellationToken Ct);

    private readonly CoraModel _model;
    private readonly int _scoringBatch;
    private readonly BatcherOptions _o;
    private readonly Channel<Work> _queue;
    private readonly Task _loop;
    /// <summary>Model calls started and finished, rows scored, requests taken into the queue, requests dropped or stopped because they were cancelled.</summary>
    public long Started, Batches, Rows, Received, Abandoned;
    private long _pending;
    /// <summary>Requests queued and not yet taken by the scoring loop.</summary>
    public long Pending => Interlocked.Read(ref _pending);
    /// <summary>Called with the rows of each finished model call (for the batch-size histogram).</summary>
    public Action<int>? OnBatch { get; set; }

    public ScoreBatcher(CoraModel model, int scoringBatch, BatcherOptions options)
    {
        _model = model; _scoringBatch = scoringBatch; _o = options;
        _queue = Channel.CreateBounded<Work>(new BoundedChannelOptions(options.Queue) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
        _loop = Task.Run(LoopAsync);
    }

    /// <summary>Scores rows through the shared batches; false when the queue is full or the service is stopping.</summary>
    /// <param name="rows">The rows of one request.</param>
    /// <param name="ct">Cancelled when the answer is no longer wanted; the rows are then not scored (or no longer).</param>
    /// <param name="scores">The scores, in row order; cancelled with <paramref name="ct"/>.</param>
    public bool TryEnqueue(IReadOnlyList<Interaction> rows, CancellationToken ct, out Task<float[]> scores)
    {
        var tcs = new TaskCompletionSource<float[]>(TaskCreationOptions.RunContinuationsAsynchronously);
        scores = tcs.Task;
        Interlocked.Increment(ref _pending);
        if (!_queue.Writer.TryWrite(new Work(rows, tcs, ct))) { Interlocked.Decrement(ref _pending); return false; }
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
                if (reader.TryRead(out var w))
                {
                    Interlocked.Decrement(ref _pending);
                    if (w.Ct.IsCancellationRequested) { Abandon(w); continue; }   // nobody waits for it any more
                    batch.Add(w); rows += w.Rows.Count; continue;
                }
                var left = until - DateTime.UtcNow;
                if (left <= TimeSpan.Zero) break;
                using var cts = new CancellationTokenSource(left);
                try { if (!await reader.WaitToReadAsync(cts.Token)) break; }
                catch (OperationCanceledException) { break; }
            }
            if (batch.Count == 0) continue;
            if (!Run(batch) && batch.Count > 1)
                foreach (var w in batch) Run(new List<Work> { w });   // isolate the request that fails
        }
    }

    /// <summary>One model call for the works; false when it failed for a reason other than cancellation (nothing answered then).</summary>
    private bool Run(List<Work> works)
    {
        works = works.Where(w => { if (!w.Ct.IsCancellationRequested) return true; Abandon(w); return false; }).ToList();
        if (works.Count == 0) return true;
        // Cancelled once every work in the call is: a long request past its deadline stops within one chunk.
        using var allGone = new CancellationTokenSource();
        int live = works.Count;
        var registrations = works.Select(w => w.Ct.Register(() => { if (Interlocked.Decrement(ref live) == 0) allGone.Cancel(); })).ToList();
        try
        {
            var all = works.SelectMany(w => w.Rows).ToList();
            Interlocked.Increment(ref Started);
            var scores = _model.Score(all, _scoringBatch, allGone.Token);
            Interlocked.Increment(ref Batches); Interlocked.Add(ref Rows, all.Count);
            OnBatch?.Invoke(all.Count);
            int at = 0;
            foreach (var w in works) { w.Done.TrySetResult(scores[at..(at + w.Rows.Count)]); at += w.Rows.Count; }
            return true;
        }
        catch (OperationCanceledException) { foreach (var w in works) Abandon(w); return true; }
        catch (Exception e)
        {
            if (works.Count > 1) return false;
            works[0].Done.TrySetException(e);
            return true;
        }
        finally { foreach (var r in registrations) r.Dispose(); }
    }

    private void Abandon(Work w)
    {
        Interlocked.Increment(ref Abandoned);
        w.Done.TrySetCanceled(w.Ct);
    }

    /// <summary>Stops taking requests and finishes every queued one (graceful shutdown).</summary>
    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _loop;
    }
}
