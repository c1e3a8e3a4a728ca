using Microsoft.ML;
using Microsoft.ML.Cora.Estimators;
using Microsoft.ML.Data;

namespace Cora.Tests;

/// <summary>
/// Fails loudly when a future ML.NET changes an internal that Cora relies on (see MlNetInternals.cs).
/// Save/load, loader registration and cancellation are exercised end to end in EstimatorTests.
/// </summary>
[TestClass]
public class MlNetInternalsTests
{
    [TestMethod]
    public void EveryInternalCoraUsesIsStillThere()
    {
        var info = typeof(MLContext).Assembly.GetCustomAttributes(typeof(System.Reflection.AssemblyInformationalVersionAttribute), false)
            .OfType<System.Reflection.AssemblyInformationalVersionAttribute>().Single().InformationalVersion;
        StringAssert.StartsWith(info, "5.0.", "Cora is tested against Microsoft.ML 5.0.x");
        foreach (var t in new[] { MlNetInternals.VersionInfoType, MlNetInternals.LoadContextType, MlNetInternals.SignatureLoadModelType,
                                  MlNetInternals.LoadableClassAttributeType, MlNetInternals.LoadableClassInfoType, MlNetInternals.CancelableType })
            Assert.IsNotNull(t);
        var ml = new MLContext();
        Assert.IsFalse(MlNetInternals.IsCanceled(ml));
        MlNetInternals.CancelExecution(ml);
        Assert.IsTrue(MlNetInternals.IsCanceled(ml));
        Assert.AreSame(ml.ComponentCatalog, MlNetInternals.EnvironmentOf(ml.Model).ComponentCatalog);
        var b = new DataViewSchema.Builder();
        b.AddColumn("Score", NumberDataViewType.Single);
        var shape = MlNetInternals.ShapeOf(b.ToSchema());
        Assert.AreEqual("Score", shape[0].Name);
        Microsoft.ML.Cora.CoraMLContextExtensions.RegisterCora(ml.ComponentCatalog);
        Microsoft.ML.Cora.CoraMLContextExtensions.RegisterCora(ml.ComponentCatalog);   // idempotent
    }
}
