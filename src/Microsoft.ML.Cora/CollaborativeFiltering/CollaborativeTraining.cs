using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Evaluation;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.CollaborativeFiltering;

/// <summary>
/// What the CF stages share: the dot-product score, scoring rows without gradients, and the training loop (Adam, BCE on the
/// click label, seeded shuffling, early stopping on validation AUC with the best epoch's weights kept).
/// </summary>
public static class CollaborativeTraining
{
    /// <summary>&lt;user, item&gt; per row, [B].</summary>
    public static Tensor Dot(ICollaborativeModel cf, IReadOnlyList<Interaction> rows)
    {
        using var scope = torch.NewDisposeScope();
        var items = rows.Select(r => (long)r.ItemId).ToArray();
        return cf.UserEmbeddings(rows).mul(cf.ItemEmbeddings(items)).sum(1).MoveToOuterDisposeScope();   // [B]
    }

    /// <summary>CF logits of rows without gradients, in batches.</summary>
    public static float[] ScoreRows(ICollaborativeModel cf, IReadOnlyList<Interaction> rows, int batch = 8192)
    {
        var result = new float[rows.Count];
        using var _ = torch.no_grad();
        for (int s = 0; s < rows.Count; s += batch)
        {
            int n = Math.Min(batch, rows.Count - s);
            var slice = new Interaction[n];
            for (int j = 0; j < n; j++) slice[j] = rows[s + j];
            using var t = cf.Score(slice);
            using var f = t.to(ScalarType.Float32).cpu();
            f.data<float>().ToArray().CopyTo(result, s);
        }
        return result;
    }

    /// <summary>Trains <paramref name="module"/> (which is <paramref name="cf"/>) with Adam and BCE; keeps the best epoch by validation AUC.</summary>
    /// <param name="module">The CF model as a module (its parameters are trained, then frozen).</param>
    /// <param name="cf">The same model as a CF model (scores batches and validation rows).</param>
    /// <param name="train">Training rows (shuffled per epoch with the seed).</param>
    /// <param name="valid">Validation rows (AUC per epoch chooses the best epoch).</param>
    /// <param name="o">Learning rate, weight decay, batch size, epochs, patience and seed.</param>
    /// <param name="kind">The stage: its defaults for unset options, and its name in log lines, errors and seed purposes.</param>
    /// <param name="log">Receives one line per epoch.</param>
    /// <param name="ct">Checked before each batch.</param>
    /// <param name="afterStep">Run after each optimiser step (e.g. keep the unknown-id rows at zero).</param>
    /// <param name="afterEpoch">Run before each validation (e.g. LightGCN's propagated tables).</param>
    internal static void Run(nn.Module module, ICollaborativeModel cf, IReadOnlyList<Interaction> train, IReadOnlyList<Interaction> valid,
        MatrixFactorizationOptions o, CollaborativeKind kind, Action<string>? log, CancellationToken ct, Action? afterStep = null, Action? afterEpoch = null)
    {
        string name = CollaborativeModels.Name(kind);
        o.HistoryFor(kind);                                                   // refuses --mf-history for a CF model that reads none
        Data.InteractionChecks.RequireBothLabels(valid, $"validation data of the {name} stage");
        double lr = o.LearningRateFor(kind);
        var opt = torch.optim.Adam(module.parameters(), lr, weight_decay: o.WeightDecayFor(kind));
        using var best = new Runtime.BestSnapshot();
        int sinceBest = 0;
        var order = Enumerable.Range(0, train.Count).ToArray();
        var labels = valid.Select(r => r.Label).ToArray();
        for (int epoch = 1; epoch <= o.MaxEpochs; epoch++)
        {
            ct.ThrowIfCancellationRequested();
            Seeded.Random(o.Seed, name + "-epoch", epoch).Shuffle(order);
            module.train();
            double lossSum = 0; int batches = 0;
            for (int s = 0; s < order.Length; s += o.BatchSize)
            {
                ct.ThrowIfCancellationRequested();
                using var scope = torch.NewDisposeScope();
                var batch = order.AsSpan(s, Math.Min(o.BatchSize, order.Length - s)).ToArray().Select(i => train[i]).ToArray();   // O(batch) per batch
                var logits = cf.Score(batch);
                var y = torch.tensor(batch.Select(r => r.Label ? 1f : 0f).ToArray(), device: logits.device);
                var loss = nn.functional.binary_cross_entropy_with_logits(logits, y);
                opt.zero_grad();
                loss.backward();
                opt.step();
                afterStep?.Invoke();
                float lossValue = loss.item<float>();
                if (!float.IsFinite(lossValue))
                    throw new Runtime.TrainingDivergedException($"{name} stage stopped in epoch {epoch}: the loss is {lossValue} (not finite). Lower MatrixFactorization.LearningRate (now {lr:G3}).");
                lossSum += lossValue; batches++;
            }
            module.eval();
            afterEpoch?.Invoke();
            double auc = Metrics.Auc(cf.ScoreRows(valid), labels);
            log?.Invoke($"{name} epoch {epoch}: loss {lossSum / Math.Max(1, batches):F4}, valid AUC {auc:F4}");
            if (best.Offer(auc, module, epoch)) sinceBest = 0;
            else if (++sinceBest >= o.Patience) break;
        }
        best.Restore(module);
        foreach (var p in module.parameters()) p.requires_grad = false;
        module.eval();
        afterEpoch?.Invoke();
    }
}
