using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Methods;
using TorchSharp;
using static TorchSharp.torch;
using Microsoft.ML.Cora;

namespace Cora.Cli;

/// <summary>
/// How much a CoRA model's per-sample weights A_b depend on the collaborative signal, measured on rows (each A_b has unit norm,
/// so every figure is a mean L2 distance between unit vectors, 0 to 2):
/// <see cref="Spread"/> — of the rows' A_b from their mean (0 = one A for every sample: the generator ignores the CF token);
/// <see cref="UserShuffled"/> — how far A_b moves when each row gets another row's user embedding (the row half the probe away);
/// <see cref="ItemsZeroed"/> — how far it moves when the item half of the CF token is zero.
/// A trained CoRA-MF model reads about 0.2 on all three; a generator that collapsed reads 0.001 or less.
/// </summary>
public sealed record GeneratorProbe(int Rows, double Spread, double UserShuffled, double ItemsZeroed)
{
    /// <summary>Probes <paramref name="model"/>'s generator on <paramref name="rows"/> (at least two).</summary>
    public static GeneratorProbe Measure(CoraModel model, IReadOnlyList<Interaction> rows)
    {
        if (model.Generator is not { } generator)
            throw new ArgumentException($"Only the cora method has a query generator; this model is {model.Options.Method}.", nameof(model));
        if (rows.Count < 2) throw new ArgumentException($"The probe needs at least 2 rows; got {rows.Count}.", nameof(rows));
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        bool wasTraining = generator.training;
        generator.eval();
        try
        {
            var items = rows.Select(r => (long)r.ItemId).ToArray();
            var token = CollaborativeLoraMethod.CfToken(model.Cf, rows, items);                           // [N, 2k]
            long half = token.shape[1] / 2;
            Tensor A(Tensor t) => generator.Forward(t).flatten(1);                                      // [N, d*r], unit rows
            var a = A(token);
            // Each row takes the user of the row half the probe away (data sorted by user keeps neighbours' users alike).
            var shuffled = torch.cat(new[] { token.narrow(1, 0, half).roll(rows.Count / 2, 0), token.narrow(1, half, half) }, 1);
            var zeroed = torch.cat(new[] { token.narrow(1, 0, half), torch.zeros_like(token.narrow(1, half, half)) }, 1);
            static double MeanDistance(Tensor x, Tensor y) => x.sub(y).norm(1).mean().item<float>();
            return new GeneratorProbe(rows.Count, MeanDistance(a, a.mean(new long[] { 0 }, keepdim: true)), MeanDistance(a, A(shuffled)), MeanDistance(a, A(zeroed)));
        }
        finally { if (wasTraining) generator.train(); }
    }
}
