using Microsoft.ML.Cora.CollaborativeFiltering;
using Microsoft.ML.Cora.Data;
using TorchSharp;
using static TorchSharp.torch;
using Microsoft.ML.Cora.Evaluation;

namespace Cora.Cli;

/// <summary>
/// Where a CF stage's ranking comes from on labelled rows: its dot-product score u·i split into an item-only part and a personal part,
/// each scored by AUC and UAUC. With m the mean user embedding over the rows, u·i = m·i + (u − m)·i: m·i ranks every user's
/// candidates the same way (what the items alone say, e.g. popularity), (u − m)·i is what the user's own vector adds. On the CoLLM
/// ML-1M split the item-only part beats the whole score for MF and SASRec alike (the personal part does not carry to the later
/// validation rows), which bounds what a model that reads mostly the item half of the CF token can gain over the CF stage.
/// </summary>
/// <param name="Rows">How many rows were probed.</param>
/// <param name="Full">AUC and UAUC of u·i (the CF stage's score, from the embeddings the query generator reads).</param>
/// <param name="ItemOnly">AUC and UAUC of m·i.</param>
/// <param name="Personal">AUC and UAUC of (u − m)·i.</param>
/// <param name="UserSpread">RMS distance of the users' embeddings from m, relative to m's norm (SASRec's users on the CoLLM validation split: 0.10; MF's: 3.6).</param>
/// <param name="UserRank">Effective rank (<see cref="EffectiveRank"/>) of the rows' known users' embeddings: how many directions they vary in.</param>
/// <param name="ItemRank">Effective rank of the rows' known items' embeddings. On the CoLLM ML-1M validation split SASRec at its defaults
/// reads 1.1 and 1.0 (its item table varies 99.8% along one direction), LightGCN 1.1 and 1.1 (propagation smooths towards one
/// direction), MF 23 and 54 of 256. A dominant direction does not mean the rest is empty: what the generator can read is measured by
/// training on the token (the README's CF section).</param>
public sealed record CfProbe(int Rows, (double Auc, double Uauc) Full, (double Auc, double Uauc) ItemOnly, (double Auc, double Uauc) Personal, double UserSpread,
    double UserRank, double ItemRank)
{
    /// <summary>
    /// Effective rank of the rows of <paramref name="x"/> around their mean (Roy and Vetterli, 2007): exp of the entropy of the
    /// centred rows' variance spectrum (the squared singular values, normalised to sum 1). 1 when the rows vary along one direction
    /// only, k when they vary equally along k orthogonal directions; 0 when every row is the same. All-zero rows (the cold-start
    /// fallback of every CF model) are left out, so that known against unknown does not count as a direction.
    /// </summary>
    /// <param name="x">[N, k]</param>
    public static double EffectiveRank(Tensor x)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var c = x.to(ScalarType.Float64).cpu();
        c = c.index(c.ne(Microsoft.ML.Cora.Runtime.Scalars.Of(0.0)).any(1));                                                                           // [N', k], N' nonzero rows
        if (c.shape[0] < 2) return 0;
        c = c.sub(c.mean(new long[] { 0 }, keepdim: true));                                                                          // [N', k]
        var v = torch.linalg.svdvals(c).pow(2);                                                                                        // [min(N, k)]
        double total = v.sum().item<double>();
        if (!(total > 0)) return 0;
        var p = v.div(total);
        return Math.Exp(-p.mul(p.clamp_min(1e-300).log()).sum().item<double>());
    }

    /// <summary>Why <paramref name="rows"/> cannot be probed (fewer than 2, or one label only), or null: checked before any work
    /// (<c>cora inspect</c> asks before it loads the model).</summary>
    public static string? RowsProblem(IReadOnlyList<Interaction> rows)
    {
        int positive = rows.Count(r => r.Label);
        return rows.Count >= 2 && positive > 0 && positive < rows.Count ? null
            : $"{rows.Count} rows with {positive} positive; the probe needs at least 2 rows and both labels (rows of both kinds)";
    }

    /// <summary>Probes <paramref name="cf"/> on <paramref name="rows"/>, which need both labels.</summary>
    public static CfProbe Measure(ICollaborativeModel cf, IReadOnlyList<Interaction> rows)
    {
        ArgumentNullException.ThrowIfNull(cf);
        if (RowsProblem(rows) is { } problem) throw new ArgumentException($"The CF probe got {problem}.", nameof(rows));
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var chunks = rows.Chunk(1024).ToList();
        var u = torch.cat(chunks.Select(c => cf.UserEmbeddings(c).to(ScalarType.Float32)).ToList(), 0);                                     // [N, k]
        var i = torch.cat(chunks.Select(c => cf.ItemEmbeddings(c.Select(r => (long)r.ItemId).ToArray()).to(ScalarType.Float32)).ToList(), 0);   // [N, k]
        var m = u.mean(new long[] { 0 }, keepdim: true);                                                                                    // [1, k]
        var labels = rows.Select(r => r.Label).ToArray();
        var users = rows.Select(r => r.UserId).ToArray();
        (double, double) Score(Tensor s)
        {
            var v = s.cpu().data<float>().ToArray();
            return (Metrics.Auc(v, labels), Metrics.Uauc(v, labels, users).uauc);
        }
        var d = u.sub(m);
        double mNorm = m.norm().item<float>();
        double spread = mNorm > 0 ? Math.Sqrt(d.mul(d).sum(1).mean().item<float>()) / mNorm : double.PositiveInfinity;
        return new CfProbe(rows.Count, Score(u.mul(i).sum(1)), Score(m.mul(i).sum(1)), Score(d.mul(i).sum(1)), spread, EffectiveRank(u), EffectiveRank(i));
    }
}
